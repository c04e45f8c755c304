"""DMO's decoupled gradient: the forward (global) model's values with the local model's Jacobians.

One imagined step of DMO (DESIGN.md §6, the anchor is DMO_code's ``GradientSwapingFunction``)::

    s' = f_local(s, a) + stopgrad(s_fwd' - f_local(s, a))

The value of ``s'`` is exactly ``s_fwd'``, the local latent of the forward model's next image;
its gradient with respect to ``s`` and ``a`` is the local model's, evaluated at the forward
state (``s`` on the right is itself the previous swapped state). Chained over a horizon, the
policy gradient of the return is the product of the local Jacobians taken along the forward
model's trajectory: the local model needs single-step accuracy only, and no gradient ever
reaches the forward model (it is stepped on detached inputs under ``torch.no_grad``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor

State = TypeVar("State")
"""A latent state: a tensor, or a dataclass / (named) tuple / list / dict of tensors (e.g. an RSSM
state with ``deter`` and ``stoch`` parts). Every function here maps over its tensors."""


def _swap(local_next: Tensor, forward_next: Tensor) -> Tensor:
    if local_next.shape != forward_next.shape:
        raise ValueError(f"local and forward states differ in shape: {tuple(local_next.shape)} vs "
                         f"{tuple(forward_next.shape)}; the forward model's state must be encoded into the "
                         "local model's latent space first")
    # Written as forward + (local - sg(local)) rather than local + sg(forward - local): the same value
    # and gradient, but the value is bit-exactly the forward state (local - sg(local) is exactly 0),
    # where local + (forward - local) can be off by rounding.
    return forward_next.detach() + (local_next - local_next.detach())


def map_state(fn: Callable[..., Tensor], *states: Any) -> Any:
    """Apply ``fn`` to the matching tensors of states with the same structure, rebuilding that structure.

    Structures: tensors, dataclasses (their init fields), tuples (named ones too), lists and dicts.
    Other leaves (None, numbers, strings) are taken from the first state.
    """
    first = states[0]
    if isinstance(first, Tensor):
        return fn(*states)
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        values = {f.name: map_state(fn, *(getattr(s, f.name) for s in states))
                  for f in dataclasses.fields(first) if f.init}
        return dataclasses.replace(first, **values)
    if isinstance(first, tuple):
        mapped = [map_state(fn, *parts) for parts in zip(*states, strict=True)]
        return type(first)(*mapped) if hasattr(first, "_fields") else tuple(mapped)
    if isinstance(first, list):
        return [map_state(fn, *parts) for parts in zip(*states, strict=True)]
    if isinstance(first, dict):
        return {key: map_state(fn, *(s[key] for s in states)) for key in first}
    return first


def detach_state(state: State) -> State:
    """The state with every tensor detached (same structure)."""
    return map_state(Tensor.detach, state)


def decoupled_step(local_next: State, forward_next: State) -> State:
    """DMO's state swap ``s' = f_local(s, a) + stopgrad(s_fwd' - f_local(s, a))``.

    Args:
        local_next: ``f_local(s, a)``, the local model's prediction of the next latent, differentiable
            with respect to the (swapped) state ``s`` and the action ``a``.
        forward_next: ``s_fwd'``, the latent of the forward model's next state (for DMO-SAPO: the RSSM
            posterior of the global world model's next image). Detached here: the forward model never
            receives a gradient.

    Returns:
        A state whose values are exactly ``forward_next`` and whose gradient flows into ``local_next``
        (identity Jacobian). Works on a tensor or on any structure of tensors (:func:`map_state`), e.g. an
        RSSM state: every part is swapped.
    """
    return map_state(_swap, local_next, forward_next)


@dataclass
class DecoupledRollout:
    """An imagined trajectory of :func:`rollout_decoupled`."""

    states: list[Any] = field(default_factory=list)
    """H + 1 states s_0 ... s_H: values from the forward model, gradients through the local model.
    s_0 is the (detached) initial state."""

    actions: list[Tensor] = field(default_factory=list)
    """H actions a_0 ... a_{H-1}, ``a_h = policy(s_h)``, differentiable (policy parameters, s_h)."""

    policy_extras: list[tuple] = field(default_factory=list)
    """H tuples: whatever the policy returned after the action (e.g. its log-probability), else ()."""


def rollout_decoupled(initial: State, actions_fn: Callable[[State], Tensor | tuple],
                      local_step: Callable[[State, Tensor], State],
                      forward_step: Callable[[State, Tensor], State], horizon: int) -> DecoupledRollout:
    """Imagine ``horizon`` steps: forward model for the values, local model for the gradients.

    Per step: ``a = actions_fn(s)`` (differentiable); ``s_fwd' = forward_step(sg(s), sg(a))`` under
    ``torch.no_grad``; ``s_local' = local_step(s, a)``; ``s' = decoupled_step(s_local', s_fwd')``.

    Args:
        initial: the start state (e.g. the encoder's latent of a real frame). Detached: a policy
            gradient must not flow into the encoder that produced it.
        actions_fn: the policy; returns the action, or a tuple whose first element is the action (the
            rest, e.g. log-probabilities, is kept in :attr:`DecoupledRollout.policy_extras`).
        local_step: ``f_local(s, a)``, differentiable (e.g. the RSSM's prior step).
        forward_step: ``(s, a) -> s_fwd'`` in the local latent space. It may be stateful: a global
            world model keeps its own image history and only uses the action; ``s`` (detached, equal to
            the forward latent of the current step) is passed for models that step the latent directly.
        horizon: H, the number of steps.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    state = detach_state(initial)
    rollout = DecoupledRollout(states=[state])
    for _ in range(horizon):
        output = actions_fn(state)
        action, extras = (output[0], tuple(output[1:])) if isinstance(output, tuple) else (output, ())
        with torch.no_grad():
            forward_next = forward_step(detach_state(state), action.detach())
        state = decoupled_step(local_step(state, action), forward_next)
        rollout.states.append(state)
        rollout.actions.append(action)
        rollout.policy_extras.append(extras)
    return rollout


__all__ = ["DecoupledRollout", "State", "decoupled_step", "detach_state", "map_state", "rollout_decoupled"]
