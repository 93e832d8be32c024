"""Where a worker deployment sends new runs, said from one build's point of view."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import DescribeWorkerDeploymentRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

__all__ = ["routing_note"]


async def routing_note(client: Client, deployment: str, build_id: str) -> tuple[bool, str]:
    """Whether new runs reach ``build_id`` of ``deployment``, and a line saying so (with the
    official CLI's command to change it when they do not)."""
    request = DescribeWorkerDeploymentRequest(
        namespace=client.namespace, deployment_name=deployment
    )
    current, ramping, percentage = "", "", 0.0
    try:
        described = await client.workflow_service.describe_worker_deployment(request)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:  # a deployment is made by its first poll
            raise
    else:
        routing = described.worker_deployment_info.routing_config
        current = routing.current_deployment_version.build_id
        ramping = routing.ramping_deployment_version.build_id
        percentage = routing.ramping_version_percentage
    this = f"build {build_id!r} of worker deployment {deployment!r}"
    if current == build_id:
        return True, f"{this} is current: new runs start on it"
    if ramping == build_id:
        return True, f"{this} is ramping: {percentage:g}% of new runs start on it"
    return False, (
        f"{this} is not current (current: {current or 'none'}): it runs only the runs that"
        " started on it, and no new ones until it is made current: temporal worker"
        f" deployment set-current-version --deployment-name {deployment} --build-id {build_id}"
    )
