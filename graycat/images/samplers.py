"""A1111 sampler and schedule names, and the diffusers scheduler each one means (names only: no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Sampler:
    """One A1111 sampler: the diffusers scheduler class that runs it and the arguments it needs."""

    name: str
    scheduler_class: str
    aliases: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    sigma_schedules: bool = True  # takes the Karras / exponential sigma options


SAMPLERS: tuple[Sampler, ...] = (
    Sampler("DPM++ 2M", "DPMSolverMultistepScheduler", ("k_dpmpp_2m",)),
    Sampler("DPM++ SDE", "DPMSolverSDEScheduler", ("k_dpmpp_sde",)),
    Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler", ("k_dpmpp_2m_sde",), {"algorithm_type": "sde-dpmsolver++"}),
    Sampler(
        "DPM++ 2M SDE Heun",
        "DPMSolverMultistepScheduler",
        ("k_dpmpp_2m_sde_heun",),
        {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"},
    ),
    Sampler("DPM++ 2S a", "DPMSolverSinglestepScheduler", ("k_dpmpp_2s_a",)),
    Sampler(
        "DPM++ 3M SDE",
        "DPMSolverMultistepScheduler",
        ("k_dpmpp_3m_sde",),
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 3},
    ),
    Sampler("Euler a", "EulerAncestralDiscreteScheduler", ("k_euler_a", "k_euler_ancestral"), sigma_schedules=False),
    Sampler("Euler", "EulerDiscreteScheduler", ("k_euler",)),
    Sampler("LMS", "LMSDiscreteScheduler", ("k_lms",)),
    Sampler("Heun", "HeunDiscreteScheduler", ("k_heun",)),
    Sampler("DPM2", "KDPM2DiscreteScheduler", ("k_dpm_2",)),
    Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", ("k_dpm_2_a",)),
    Sampler("DDIM", "DDIMScheduler", ("ddim",), sigma_schedules=False),
    Sampler("PLMS", "PNDMScheduler", ("plms",), {"skip_prk_steps": True}, sigma_schedules=False),
    Sampler("UniPC", "UniPCMultistepScheduler", ("unipc",)),
    Sampler("LCM", "LCMScheduler", ("lcm",), sigma_schedules=False),
)


@dataclass(frozen=True, slots=True)
class Schedule:
    """One A1111 schedule type (`scheduler` field, or a sampler name's suffix) and its scheduler arguments."""

    name: str
    label: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    needs_sigmas: bool = False


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("automatic", "Automatic"),
    Schedule("uniform", "Uniform"),
    Schedule("karras", "Karras", {"use_karras_sigmas": True}, needs_sigmas=True),
    Schedule("exponential", "Exponential", {"use_exponential_sigmas": True}, needs_sigmas=True),
    Schedule("sgm_uniform", "SGM Uniform", {"timestep_spacing": "trailing"}),
)

DEFAULT_SAMPLER = "Euler a"
_SAMPLER_NAMES = {n.lower(): s for s in SAMPLERS for n in (s.name, *s.aliases)}
_SCHEDULE_NAMES = {n.lower(): s for s in SCHEDULES for n in (s.name, s.label)}


class UnknownSampler(ValueError):
    """A sampler or schedule this server cannot run; the message lists what it can."""


@dataclass(frozen=True, slots=True)
class SamplerChoice:
    sampler: Sampler
    schedule: Schedule

    def scheduler_kwargs(self) -> dict[str, Any]:
        return {**self.sampler.kwargs, **self.schedule.kwargs}


def resolve(sampler_name: str | None, schedule_name: str | None = None) -> SamplerChoice:
    """The sampler and schedule an A1111 request means. A trailing schedule label in the sampler name
    ("DPM++ 2M Karras") sets the schedule, as in A1111; an explicit `scheduler` field wins over it."""
    name = (sampler_name or DEFAULT_SAMPLER).strip()
    sampler = _SAMPLER_NAMES.get(name.lower())
    schedule = SCHEDULES[0]
    if sampler is None:
        base, _, suffix = name.rpartition(" ")
        sampler = _SAMPLER_NAMES.get(base.lower())
        found = _SCHEDULE_NAMES.get(suffix.lower())
        if sampler is None or found is None:
            raise UnknownSampler(
                f"unknown sampler '{name}'; available: {', '.join(s.name for s in SAMPLERS)} "
                f"(optionally followed by a schedule: {', '.join(s.label for s in SCHEDULES)})"
            )
        schedule = found
    if schedule_name:
        explicit = _SCHEDULE_NAMES.get(schedule_name.strip().lower())
        if explicit is None:
            raise UnknownSampler(
                f"unknown scheduler '{schedule_name}'; available: {', '.join(s.name for s in SCHEDULES)}"
            )
        schedule = explicit
    if schedule.needs_sigmas and not sampler.sigma_schedules:
        raise UnknownSampler(f"sampler '{sampler.name}' cannot use the {schedule.label} schedule")
    return SamplerChoice(sampler, schedule)


def sampler_list() -> list[dict[str, Any]]:
    """`GET /sdapi/v1/samplers`."""
    return [{"name": s.name, "aliases": list(s.aliases), "options": {}} for s in SAMPLERS]


def schedule_list() -> list[dict[str, Any]]:
    """`GET /sdapi/v1/schedulers`."""
    return [
        {"name": s.name, "label": s.label, "aliases": None, "default_rho": None, "need_inner_model": None}
        for s in SCHEDULES
    ]
