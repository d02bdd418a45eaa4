"""How MLflow's deployment words map onto the control plane's, without importing MLflow.

- target URI: ``controlplane`` (URL from ``CONTROLPLANE_URL``), ``controlplane:/http://host:8000``
  or ``controlplane://host:8000`` (plain http).
- deployment name: ``<endpoint>/<variant>`` is one variant on one endpoint; ``<endpoint>`` alone is
  the endpoint as a whole (get, predict). ``--endpoint E --name V`` means the same as ``--name E/V``.
- model URI: ``models:/<model>/<version>`` or ``models:/<model>@<alias>``.
- config values: ``-C key=value`` strings, read here with clear errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

TARGET = "controlplane"
_MODEL_URI = re.compile(r"^models:/(?P<model>[^@]+?)(?:/(?P<version>\d+)|@(?P<alias>[^/@]+))$")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


class NamingError(ValueError):
    """An argument the plugin cannot read; the message says what the right form is."""


@dataclass(frozen=True)
class DeploymentName:
    """One endpoint, and optionally one of its variants."""

    endpoint: str
    variant: str | None

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.variant}" if self.variant else self.endpoint


@dataclass(frozen=True)
class ModelRef:
    """A registered model and a version number or an alias."""

    model: str
    version: int | None
    alias: str | None


def url_from_target(target_uri: str) -> str | None:
    """The control plane URL a target URI names, or None when it names none (use the environment)."""
    if not target_uri.startswith(TARGET):
        raise NamingError(f"Not a controlplane target: {target_uri!r}.")
    rest = target_uri[len(TARGET) :]
    if rest and not rest.startswith(":"):
        raise NamingError(f"Not a controlplane target: {target_uri!r}.")
    rest = rest[1:].lstrip("/")
    if not rest:
        return None
    return rest if rest.startswith(("http://", "https://")) else f"http://{rest}"


def deployment_name(name: str | None, endpoint: str | None = None) -> DeploymentName:
    """``NAME`` as ``endpoint[/variant]``; with ``endpoint`` given, ``NAME`` is the variant."""
    if endpoint:
        if not name:
            return DeploymentName(endpoint, None)
        if "/" in name:
            raise NamingError(f"With --endpoint {endpoint}, --name is a variant name, not {name!r}.")
        return DeploymentName(endpoint, name)
    if not name:
        raise NamingError("A deployment name is required: <endpoint> or <endpoint>/<variant>.")
    head, sep, tail = name.partition("/")
    if not head or "/" in tail or (sep and not tail):
        raise NamingError(f"A deployment name is <endpoint> or <endpoint>/<variant>, not {name!r}.")
    return DeploymentName(head, tail or None)


def model_ref(model_uri: str | None) -> ModelRef:
    """``models:/<model>/<version>`` or ``models:/<model>@<alias>``; anything else is refused."""
    match = _MODEL_URI.match(model_uri or "")
    if not match:
        raise NamingError(
            f"The control plane serves registered versions: use models:/<model>/<version> or "
            f"models:/<model>@<alias>, not {model_uri!r} (register the model in MLflow first)."
        )
    version = match["version"]
    return ModelRef(match["model"], int(version) if version else None, match["alias"])


def config_check(config: Mapping[str, str], allowed: tuple[str, ...], what: str) -> None:
    """Refuse keys the command does not know, so a typo (``-C precent=10``) is never ignored."""
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise NamingError(f"{what} does not take -C {', '.join(unknown)}; it takes {', '.join(allowed)}.")


def config_reason(config: Mapping[str, str]) -> str:
    """The ``reason`` every change needs (audit trail, MLflow tags)."""
    reason = str(config.get("reason", "")).strip()
    if not reason:
        raise NamingError('Every change needs a reason: add -C reason="why you do this".')
    return reason


def config_int(config: Mapping[str, str], key: str) -> int | None:
    """``-C key=N`` as an int, None when absent."""
    if key not in config:
        return None
    try:
        return int(str(config[key]).strip())
    except ValueError:
        raise NamingError(f"-C {key} must be a whole number, not {config[key]!r}.") from None


def config_choice(config: Mapping[str, str], key: str, choices: tuple[str, ...], default: str) -> str:
    """``-C key=value`` among ``choices`` (``true``/``false`` spellings are normalised)."""
    value = str(config.get(key, default)).strip().lower()
    value = "true" if value in _TRUE else "false" if value in _FALSE else value
    if value not in choices:
        raise NamingError(f"-C {key} must be one of {', '.join(choices)}, not {config[key]!r}.")
    return value
