"""Tests of podgate's Airflow cluster policy, against stubbed Airflow names (see airflow_stubs)."""

from __future__ import annotations

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import airflow_stubs  # noqa: E402

airflow_stubs.install()

from podgate_airflow import policy  # noqa: E402
from airflow_stubs import AirflowClusterPolicyViolation, BaseOperator, KubernetesPodOperator  # noqa: E402


class GKEStartPodOperator(KubernetesPodOperator):
    """A provider's subclass (google, amazon's EksPodOperator alike)."""


class BashOperator(BaseOperator):
    labels = {"not": "a pod"}


PRODUCTION = {"PODGATE_ENVIRONMENT": "production"}


class TaskPolicyTest(unittest.TestCase):
    def test_a_kpo_task_gets_the_environment_label(self):
        task = KubernetesPodOperator("export", labels={"team": "data"})
        policy.apply_environment_label(task, PRODUCTION)
        self.assertEqual(task.labels, {"team": "data", "podgate.io/environment": "production"})

    def test_subclasses_too(self):
        task = GKEStartPodOperator("export")
        policy.apply_environment_label(task, PRODUCTION)
        self.assertEqual(task.labels, {"podgate.io/environment": "production"})

    def test_other_operators_are_left_alone(self):
        task = BashOperator("echo")
        policy.apply_environment_label(task, {})  # no environment needed for a task that makes no pod
        self.assertEqual(task.labels, {"not": "a pod"})

    def test_a_label_the_dag_set_is_kept(self):
        task = KubernetesPodOperator("export", labels={"podgate.io/environment": "alpha"})
        policy.apply_environment_label(task, PRODUCTION)
        self.assertEqual(task.labels, {"podgate.io/environment": "alpha"}, "podgate refuses the pod if it names another environment")

    def test_labels_shared_with_other_tasks_are_not_changed_in_place(self):
        shared = {"team": "data"}
        first, second = KubernetesPodOperator("a", labels=shared), KubernetesPodOperator("b", labels=shared)
        first.labels = shared
        second.labels = shared
        policy.apply_environment_label(first, PRODUCTION)
        self.assertEqual(shared, {"team": "data"})
        self.assertIsNot(first.labels, second.labels)

    def test_labels_of_another_mapping_type_are_kept_and_added_to(self):
        from types import MappingProxyType

        task = KubernetesPodOperator("export")
        task.labels = MappingProxyType({"team": "data"})
        policy.apply_environment_label(task, PRODUCTION)
        self.assertEqual(task.labels, {"team": "data", "podgate.io/environment": "production"})
        unset = KubernetesPodOperator("export")
        unset.labels = None
        policy.apply_environment_label(unset, PRODUCTION)
        self.assertEqual(unset.labels, {"podgate.io/environment": "production"})

    def test_the_policys_label_prefix(self):
        task = KubernetesPodOperator("export")
        policy.apply_environment_label(task, {**PRODUCTION, "PODGATE_LABEL_PREFIX": "example.com"})
        self.assertEqual(task.labels, {"example.com/environment": "production"})

    def test_a_missing_environment_is_a_clear_error(self):
        with self.assertRaises(AirflowClusterPolicyViolation) as raised:
            policy.apply_environment_label(KubernetesPodOperator("export"), {})
        message = str(raised.exception)
        self.assertIn("PODGATE_ENVIRONMENT is not set where DAGs are parsed", message)
        self.assertIn("env: [{name: PODGATE_ENVIRONMENT, value: production}]", message)

    def test_a_value_that_is_no_label_value_is_refused(self):
        for value in ["prod env", "-prod", "x" * 64]:
            with self.subTest(value=value), self.assertRaises(AirflowClusterPolicyViolation) as raised:
                policy.apply_environment_label(KubernetesPodOperator("export"), {"PODGATE_ENVIRONMENT": value})
            self.assertIn("is not a Kubernetes label value", str(raised.exception))
        with self.assertRaises(AirflowClusterPolicyViolation):
            policy.apply_environment_label(KubernetesPodOperator("export"), {**PRODUCTION, "PODGATE_LABEL_PREFIX": "Not_A_Domain"})

    def test_the_hook_is_a_pluggy_task_policy_reading_the_process_environment(self):
        self.assertTrue(hasattr(policy.task_policy, "airflow_impl"), "marked with airflow.policies.hookimpl")
        task = KubernetesPodOperator("export")
        previous = os.environ.get("PODGATE_ENVIRONMENT")
        os.environ["PODGATE_ENVIRONMENT"] = "alpha"
        try:
            policy.task_policy(task)
        finally:
            if previous is None:
                del os.environ["PODGATE_ENVIRONMENT"]
            else:
                os.environ["PODGATE_ENVIRONMENT"] = previous
        self.assertEqual(task.labels, {"podgate.io/environment": "alpha"})

    def test_the_entry_point_names_the_module_with_the_hook(self):
        with open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml"), encoding="utf-8") as file:
            text = file.read()
        self.assertIn('[project.entry-points."airflow.policy"]\npodgate = "podgate_airflow.policy"', text)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--labels":
    # For the TypeScript side's test: the labels a KPO task ends up with in environment sys.argv[2].
    task = KubernetesPodOperator("export", labels={"team": "data"})
    policy.apply_environment_label(task, {"PODGATE_ENVIRONMENT": sys.argv[2]})
    print(json.dumps(task.labels))
elif __name__ == "__main__":
    unittest.main()
