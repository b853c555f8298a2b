"""podgate's Airflow side: a cluster policy that scopes KubernetesPodOperator lookups."""

from podgate_airflow.policy import ENVIRONMENT_VARIABLE, LABEL_PREFIX_VARIABLE, apply_environment_label, task_policy

__all__ = ["ENVIRONMENT_VARIABLE", "LABEL_PREFIX_VARIABLE", "apply_environment_label", "task_policy"]
