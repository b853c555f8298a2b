"""The few Airflow names podgate_airflow imports, stubbed: no Airflow install is available where
these tests run. Each stub keeps the behaviour the policy relies on, as Airflow and the
cncf.kubernetes provider define it:

- ``airflow.exceptions.AirflowClusterPolicyViolation``: an Exception subclass.
- ``airflow.policies.hookimpl``: pluggy's marker; the stub marks the function as pluggy does
  (an ``airflow_impl`` attribute) so a test can see that the hook is registered.
- ``KubernetesPodOperator``: ``labels`` is ``labels or {}`` (operators/pod.py), at the module path
  of provider 5.0+ (``operators.pod``).
"""

from __future__ import annotations

import sys
import types


class AirflowClusterPolicyViolation(Exception):
    pass


def hookimpl(function):
    function.airflow_impl = {}  # pluggy's HookimplMarker sets <project>_impl
    return function


class BaseOperator:
    def __init__(self, task_id: str):
        self.task_id = task_id


class KubernetesPodOperator(BaseOperator):
    def __init__(self, task_id: str, labels: dict | None = None):
        super().__init__(task_id)
        self.labels = labels or {}


def install() -> None:
    modules = {
        "airflow": types.ModuleType("airflow"),
        "airflow.exceptions": types.ModuleType("airflow.exceptions"),
        "airflow.policies": types.ModuleType("airflow.policies"),
        "airflow.providers": types.ModuleType("airflow.providers"),
        "airflow.providers.cncf": types.ModuleType("airflow.providers.cncf"),
        "airflow.providers.cncf.kubernetes": types.ModuleType("airflow.providers.cncf.kubernetes"),
        "airflow.providers.cncf.kubernetes.operators": types.ModuleType("airflow.providers.cncf.kubernetes.operators"),
        "airflow.providers.cncf.kubernetes.operators.pod": types.ModuleType("airflow.providers.cncf.kubernetes.operators.pod"),
    }
    modules["airflow.exceptions"].AirflowClusterPolicyViolation = AirflowClusterPolicyViolation
    modules["airflow.policies"].hookimpl = hookimpl
    modules["airflow.providers.cncf.kubernetes.operators.pod"].KubernetesPodOperator = KubernetesPodOperator
    sys.modules.update(modules)
