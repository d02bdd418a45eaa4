"""The MLflow deployments plugin for target ``controlplane`` (entry point group ``mlflow.deployments``).

``mlflow deployments create|update|predict|get|list|delete -t controlplane`` and
``mlflow.deployments.get_deploy_client("controlplane")`` land here. A deployment is one variant
on one endpoint, named ``<endpoint>/<variant>``; every change goes through the control API as the
user whose token is in ``CONTROLPLANE_API_TOKEN``, with the ``-C reason=...`` it requires.
``target_help()`` below is what ``mlflow deployments help -t controlplane`` prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2 as codes

from controlplane_client import naming
from controlplane_client.client import ControlPlane
from controlplane_client.errors import ControlPlaneError
from controlplane_client.naming import DeploymentName, NamingError

FLAVOR = "python_function"
_ERROR_CODES = {
    400: codes.INVALID_PARAMETER_VALUE,
    401: codes.UNAUTHENTICATED,
    403: codes.PERMISSION_DENIED,
    404: codes.RESOURCE_DOES_NOT_EXIST,
    409: codes.INVALID_STATE,
    503: codes.TEMPORARILY_UNAVAILABLE,
}


def target_help() -> str:
    """What ``mlflow deployments help -t controlplane`` prints."""
    return _HELP


class ControlPlaneDeploymentError(MlflowException, click.ClickException):
    """A refusal: an ``MlflowException`` for Python callers (the plugin API asks for it), and a
    ``ClickException`` so the ``mlflow deployments`` CLI prints ``Error: <message>`` and exits 1
    instead of a forty-line traceback around one sentence."""


def run_local(*args: Any, **kwargs: Any) -> None:
    """Not offered: the control plane is a server; ``mlflow models serve`` runs one model locally."""
    raise ControlPlaneDeploymentError(
        "The controlplane target has no local mode; use `mlflow models serve -m models:/<model>/<version>` "
        "to try a model locally, then `mlflow deployments create -t controlplane` to start it as a challenger.",
        error_code=codes.INVALID_PARAMETER_VALUE,
    )


@contextmanager
def _as_mlflow_errors() -> Iterator[None]:
    """The SDK's and the plugin's refusals as ``ControlPlaneDeploymentError``."""
    try:
        yield
    except ControlPlaneError as exc:
        code = _ERROR_CODES.get(
            exc.status, codes.INTERNAL_ERROR if exc.status else codes.INVALID_PARAMETER_VALUE
        )
        raise ControlPlaneDeploymentError(f"controlplane: {exc}", error_code=code) from exc
    except (NamingError, ValueError, TypeError) as exc:
        raise ControlPlaneDeploymentError(
            f"controlplane: {exc}", error_code=codes.INVALID_PARAMETER_VALUE
        ) from exc


def _deployment(endpoint: str, variant: dict[str, Any]) -> dict[str, Any]:
    """A variant as an MLflow deployment: ``name`` and ``flavor`` first, then the control plane's facts."""
    return {
        "name": f"{endpoint}/{variant['name']}",
        "flavor": FLAVOR,
        "endpoint": endpoint,
        "variant": variant["name"],
        "role": variant["role"],
        "model_uri": f"models:/{variant['model_name']}/{variant['version']}",
        "weight": variant["weight"],
        "share": variant["share"],
        "mirror_percent": variant["mirror_percent"],
        "backend": variant.get("backend", ""),
    }


def _endpoint_summary(endpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": endpoint["name"],
        "registered_model": endpoint["registered_model"],
        "is_active": endpoint["is_active"],
        "description": endpoint.get("description", ""),
        "deployments": [_deployment(endpoint["name"], v) for v in endpoint["variants"]],
    }


class ControlPlaneDeploymentClient(BaseDeploymentClient):
    """Deployments on the control plane: create starts a challenger (or a shadow, or a new endpoint's
    champion), update changes its share or promotes it, delete retires it, predict calls /predict."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)
        with _as_mlflow_errors():
            self.cp = ControlPlane(naming.url_from_target(target_uri))

    # --- changes -------------------------------------------------------------------------------

    def create_deployment(
        self,
        name: str,
        model_uri: str,
        flavor: str | None = None,
        config: dict | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        """Start ``model_uri`` on an endpoint: ``-C percent=N`` as a challenger (default),
        ``-C role=shadow -C percent=N`` as a shadow, ``-C role=champion`` to create the endpoint."""
        config = dict(config or {})
        with _as_mlflow_errors():
            naming.config_check(config, ("reason", "percent", "role"), "create")
            role = naming.config_choice(config, "role", ("challenger", "shadow", "champion"), "challenger")
            reason = naming.config_reason(config)
            target, version, model = self._create_args(name, model_uri, flavor, endpoint)
            answer = self._start(target, version, model, role, reason, naming.config_int(config, "percent"))
            variant = next((v for v in answer["variants"] if v["version"] == version), None)
            if variant is None:  # the server said yes but does not show it: report, do not guess
                raise NamingError(f"{target.endpoint} does not list version {version} after the change.")
            return _deployment(target.endpoint, variant)

    def _start(
        self, target: DeploymentName, version: int, model: str, role: str, reason: str, percent: int | None
    ) -> dict[str, Any]:
        if role == "champion":
            if percent is not None:
                raise NamingError("A new endpoint's champion takes all traffic; drop -C percent.")
            if target.variant not in (None, f"v{version}"):
                raise NamingError(f"A new endpoint's champion is named v{version}; drop /{target.variant}.")
            return self.cp.create_endpoint(
                target.endpoint, model_name=model, champion_version=version, reason=reason
            )
        if percent is None:
            raise NamingError(f"Say how much traffic the {role} gets: -C percent=N.")
        options = {"model_name": model, "name": target.variant, "reason": reason}
        if role == "shadow":
            return self.cp.set_shadow(target.endpoint, version=version, mirror_percent=percent, **options)
        return self.cp.start_challenger(target.endpoint, version=version, percent=percent, **options)

    def _create_args(
        self, name: str, model_uri: str, flavor: str | None, endpoint: str | None
    ) -> tuple[DeploymentName, int, str]:
        if flavor not in (None, FLAVOR, "pyfunc"):
            raise NamingError(f"The control plane serves models through {FLAVOR}, not {flavor!r}.")
        target, ref = naming.deployment_name(name, endpoint), naming.model_ref(model_uri)
        return target, self._version_of(ref.model, ref.version, ref.alias), ref.model

    def _version_of(self, model: str, version: int | None, alias: str | None) -> int:
        if version is not None:
            return version
        for row in self.cp.versions(model=model):
            if alias in row.get("aliases", []):
                return int(row["version"])
        raise NamingError(
            f"The control plane's mirror has no version of {model!r} with alias {alias!r} "
            "(run sync_registry if it was just set, or give the version number)."
        )

    def update_deployment(
        self,
        name: str,
        model_uri: str | None = None,
        flavor: str | None = None,
        config: dict | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        """Change a variant: ``-C percent=N`` (its share, or a shadow's mirror percent) or
        ``-C promote=true`` (``promote=request`` asks for four-eyes approval)."""
        config = dict(config or {})
        with _as_mlflow_errors():
            naming.config_check(config, ("reason", "percent", "promote", "gate_override_reason"), "update")
            target, variant = self._variant(name, endpoint)
            if model_uri is not None and naming.model_ref(model_uri).version not in (
                None,
                variant["version"],
            ):
                raise NamingError(
                    f"{target} serves version {variant['version']}; a variant never changes version. "
                    "Create a new deployment for the other version."
                )
            reason, percent = naming.config_reason(config), naming.config_int(config, "percent")
            promote = naming.config_choice(config, "promote", ("true", "false", "request"), "false")
            if (percent is None) == (promote == "false"):
                raise NamingError("update takes exactly one change: -C percent=N or -C promote=true|request.")
            self._update(target, variant, reason, percent, promote, config.get("gate_override_reason", ""))
            _, after = self._variant(name, endpoint, serving_only=False)
            return _deployment(target.endpoint, after)

    def _update(
        self,
        target: DeploymentName,
        variant: dict,
        reason: str,
        percent: int | None,
        promote: str,
        override: str,
    ) -> None:
        ep, name = target.endpoint, variant["name"]
        if promote == "true":
            self.cp.promote(ep, name, reason=reason, gate_override_reason=override)
        elif promote == "request":
            self.cp.request_promotion(ep, name, reason=reason, gate_override_reason=override)
        elif variant["role"] == "shadow":
            self.cp.set_shadow(ep, version=variant["version"], mirror_percent=percent, reason=reason)
        else:
            self.cp.set_share(ep, name, percent, reason=reason)

    def delete_deployment(self, name: str, config: dict | None = None, endpoint: str | None = None) -> None:
        """Retire a challenger or remove a shadow (``-C reason=...``); a variant already gone is left as is."""
        config = dict(config or {})
        with _as_mlflow_errors():
            naming.config_check(config, ("reason",), "delete")
            reason = naming.config_reason(config)
            target = naming.deployment_name(name, endpoint)
            if target.variant is None:
                raise NamingError(
                    f"Endpoints are not deleted from MLflow; name a variant ({target.endpoint}/<variant>), "
                    "or pause the endpoint in the admin or the API."
                )
            current = {v["name"]: v for v in self.cp.endpoint(target.endpoint)["variants"]}
            variant = current.get(target.variant)
            if variant is None:
                return  # retired already or never there: deleting is idempotent
            if variant["role"] == "champion":
                raise NamingError(
                    f"{target} is the champion and cannot be deleted; promote a challenger or roll back."
                )
            if variant["role"] == "shadow":
                self.cp.remove_shadow(target.endpoint, target.variant, reason=reason)
            else:
                self.cp.retire_challenger(target.endpoint, target.variant, reason=reason)

    # --- reads ---------------------------------------------------------------------------------

    def _variant(
        self, name: str, endpoint: str | None, serving_only: bool = True
    ) -> tuple[DeploymentName, dict[str, Any]]:
        target = naming.deployment_name(name, endpoint)
        if target.variant is None:
            raise NamingError(f"Name a variant: {target.endpoint}/<variant> (see `mlflow deployments list`).")
        variants = (
            self.cp.endpoint(target.endpoint)["variants"]
            if serving_only
            else self.cp.variants(endpoint=target.endpoint)
        )
        found = next((v for v in variants if v["name"] == target.variant), None)
        if found is None:
            self.cp.endpoint(target.endpoint)  # an unknown endpoint is a 404 of its own
            state = "serving " if serving_only else ""
            raise ControlPlaneError(
                404, "not_found", f"Endpoint {target.endpoint!r} has no {state}variant {target.variant!r}."
            )
        return target, found

    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        """``<endpoint>``: the endpoint and its serving variants; ``<endpoint>/<variant>``: that variant (retired too)."""
        with _as_mlflow_errors():
            target = naming.deployment_name(name, endpoint)
            if target.variant is None:
                return {**_endpoint_summary(self.cp.endpoint(target.endpoint)), "flavor": FLAVOR}
            return _deployment(target.endpoint, self._variant(name, endpoint, serving_only=False)[1])

    def list_deployments(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Every serving variant (champion, challengers, shadows) of every endpoint, or of one."""
        with _as_mlflow_errors():
            endpoints = [self.cp.endpoint(endpoint)] if endpoint else self.cp.endpoints()
            return [_deployment(ep["name"], v) for ep in endpoints for v in ep["variants"]]

    def list_endpoints(self) -> list[dict[str, Any]]:
        with _as_mlflow_errors():
            return [_endpoint_summary(ep) for ep in self.cp.endpoints()]

    def get_endpoint(self, endpoint: str) -> dict[str, Any]:
        with _as_mlflow_errors():
            return _endpoint_summary(self.cp.endpoint(endpoint))

    def predict(
        self, deployment_name: str | None = None, inputs: Any = None, endpoint: str | None = None
    ) -> PredictionsResponse:
        """``<endpoint>``: routed by the weights; ``<endpoint>/<variant>``: forced to that variant
        (the service token must be allowed to override)."""
        with _as_mlflow_errors():
            if deployment_name is None:
                target = DeploymentName(endpoint or "", None)
            else:
                target = naming.deployment_name(deployment_name, endpoint)
            answer = self.cp.predict(target.endpoint, inputs, variant=target.variant)
            return PredictionsResponse(answer.raw)


_HELP = """Target "controlplane": the MLOps control plane (endpoints with champion, challengers, shadows).

Target URI
  -t controlplane                       URL from CONTROLPLANE_URL
  -t controlplane:/http://HOST:8000     URL in the URI (https too); controlplane://HOST:8000 means http
Credentials (environment; each also as <NAME>_FILE holding the value)
  CONTROLPLANE_API_TOKEN  a user's API token (create, update, delete, get, list act as that user)
  CONTROLPLANE_TOKEN      a service token for predict (forcing a variant needs --can-override)

Deployment names: <endpoint>/<variant> is one variant on one endpoint; <endpoint> alone is the
whole endpoint (get, predict). --endpoint E --name V is the same as --name E/V.
Model URIs: models:/<model>/<version> or models:/<model>@<alias>. Every change needs -C reason=...

  create  -m models:/M/3 --name demo        -C percent=10 -C reason=...   challenger at 10 %
          --name demo/candidate             (names the variant; default v<version>)
          -C role=shadow -C percent=20                                    mirror 20 % as a shadow
          --name new-ep -C role=champion                                  create endpoint new-ep
  update  --name demo/v3 -C percent=30 -C reason=...     the variant's share (others keep proportions)
          --name demo/v3 -C promote=true -C reason=...   promote (promote=request: four-eyes request;
                                                         -C gate_override_reason=... past a failed gate)
  delete  --name demo/v3 -C reason=...       retire a challenger or remove a shadow
  predict --endpoint demo -I in.json         routed by weight; --name demo/v3 forces that variant
  get     --name demo | --name demo/v3       list [--endpoint demo]   list-endpoints   get-endpoint
"""
