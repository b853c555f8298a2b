"""An Airflow cluster policy that puts podgate's environment label into the labels of every
KubernetesPodOperator task (and its subclasses: GKEStartPodOperator, EksPodOperator, ...).

KubernetesPodOperator finds its pod again with a label selector built from the operator's own
``labels`` plus the task instance's. podgate labels every KPO pod with the environment that
created it, but a label added to the pod is not in that selector: two Airflow installations
running the same DAG in one namespace still find each other's pods. With the label in the
operator's ``labels``, each installation's lookups only match its own pods, and podgate's
``kpoEnvironment`` rule can run with ``scopedLookups: deny``.

The environment comes from the deployment, not from DAG code: the ``PODGATE_ENVIRONMENT``
environment variable (the official chart's ``env`` value), set to this installation's name in
the podgate policy's ``airflow.environments``. A DAG that sets the label itself keeps its value;
podgate refuses the pod if it names another environment than the one that created it.

Use it either way:

- Airflow 2.6+: install this package; its ``airflow.policy`` entry point registers
  ``task_policy`` (pluggy).
- Any Airflow 2: in ``airflow_local_settings.py``::

      from podgate_airflow.policy import apply_environment_label

      def task_policy(task):
          apply_environment_label(task)
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any

ENVIRONMENT_VARIABLE = "PODGATE_ENVIRONMENT"
# The podgate policy's airflow.labelPrefix, when it is not the default.
LABEL_PREFIX_VARIABLE = "PODGATE_LABEL_PREFIX"
DEFAULT_LABEL_PREFIX = "podgate.io"

# A Kubernetes label value: 63 characters at most, alphanumeric at both ends, - _ . inside.
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
# A DNS subdomain, as a label key's prefix must be.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

try:  # Airflow 2.2+: a violation makes the DAG fail to import, with the message in the UI's import errors.
    from airflow.exceptions import AirflowClusterPolicyViolation as PolicyViolation
except ImportError:  # pragma: no cover - only without Airflow

    class PolicyViolation(Exception):  # type: ignore[no-redef]
        """Raised when the deployment does not say which environment it is."""


try:  # Airflow 2.6+: pluggy hooks, registered through the airflow.policy entry point.
    from airflow.policies import hookimpl
except ImportError:  # Airflow before 2.6: call apply_environment_label from airflow_local_settings.py.

    def hookimpl(function: Any) -> Any:  # type: ignore[no-redef]
        return function


@functools.lru_cache(maxsize=1)
def _operator_classes() -> tuple[type, ...]:
    """KubernetesPodOperator as the installed provider names it (the module moved in provider 5.0)."""
    classes: list[type] = []
    for module, name in (
        ("airflow.providers.cncf.kubernetes.operators.pod", "KubernetesPodOperator"),
        ("airflow.providers.cncf.kubernetes.operators.kubernetes_pod", "KubernetesPodOperator"),
    ):
        try:
            imported = __import__(module, fromlist=[name])
        except ImportError:
            continue
        cls = getattr(imported, name, None)
        if isinstance(cls, type) and cls not in classes:
            classes.append(cls)
    return tuple(classes)


def environment_label(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The label key and value this deployment puts on its operators, or a violation saying what to set."""
    value = environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not value:
        raise PolicyViolation(
            f"{ENVIRONMENT_VARIABLE} is not set where DAGs are parsed, so podgate's cluster policy cannot label "
            "KubernetesPodOperator tasks with their environment. Set it to this installation's name in the podgate "
            f"policy's airflow.environments, e.g. in the official chart's values: env: [{{name: {ENVIRONMENT_VARIABLE}, value: production}}]."
        )
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise PolicyViolation(
            f"{ENVIRONMENT_VARIABLE}={value[:80]!r} is not a Kubernetes label value (63 characters at most, letters, digits, "
            "- _ . inside, alphanumeric at both ends); use the environment's name from the podgate policy."
        )
    prefix = environ.get(LABEL_PREFIX_VARIABLE, "").strip() or DEFAULT_LABEL_PREFIX
    if len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix):
        raise PolicyViolation(f"{LABEL_PREFIX_VARIABLE}={prefix[:80]!r} is not a DNS subdomain, as podgate's airflow.labelPrefix must be.")
    return f"{prefix}/environment", value


def apply_environment_label(task: Any, environ: Mapping[str, str] = os.environ) -> None:
    """Adds the environment label to a KubernetesPodOperator task's labels; any other task is left alone."""
    classes = _operator_classes()
    if not classes or not isinstance(task, classes):
        return
    key, value = environment_label(environ)
    labels = {} if task.labels is None else task.labels
    if not isinstance(labels, Mapping):
        return  # not a map to add to; podgate's scopedLookups check still reports the pod
    if key in labels:
        return  # the DAG's own value wins; podgate refuses the pod if it names another environment
    # A new dict: an operator's labels may be a dict shared with default_args or other tasks.
    task.labels = {**labels, key: value}


@hookimpl
def task_policy(task: Any) -> None:
    """The cluster policy hook: see the module's documentation."""
    apply_environment_label(task)
