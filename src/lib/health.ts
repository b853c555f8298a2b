/** One line of /readyz: whether a part of podgate is fit to serve, and why (or why not). */
export interface HealthCheck {
  readonly ok: boolean;
  readonly detail: string;
}
