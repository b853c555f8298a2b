/** A count as people read it in a message: 10,000, not 10000. Fixed to en-US so messages do not depend on the host's locale. */
const COUNT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatCount(value: number): string {
  return COUNT.format(value);
}

/** `count` of `noun`, plural past one: "1 term", "15,000 terms". For nouns whose plural adds an s. */
export function countOf(count: number, noun: string): string {
  return `${formatCount(count)} ${noun}${count === 1 ? '' : 's'}`;
}
