"""LAMB: layer-wise adaptive moments (optax.lamb)."""

from __future__ import annotations

from . import reference
from .optimizer import BACKEND_DOC, CLIP_DOC, PARAMS_DOC, Optimizer, Params, StateDType
from .rules import BETAS, NONNEGATIVE, hyper_table

__all__ = ["LAMB"]


class LAMB(Optimizer):
    __doc__ = f"""LAMB: layer-wise adaptive moments for batch training (You et al., 2020).

    The rule of ``optax.lamb`` (Adam's direction, decoupled weight decay, then a trust
    ratio per parameter array), for step t with gradient g_t::

        m_t = (1 - beta1) * g_t + beta1 * m_(t-1)
        v_t = (1 - beta2) * g_t^2 + beta2 * v_(t-1)
        u = (m_t / (1 - beta1^t)) / (sqrt(v_t / (1 - beta2^t) + eps_root) + eps)
        u = u + weight_decay * p
        ratio = ||p|| / ||u||   (1 when either norm is 0)
        p = p - lr * ratio * u

    The two norms of each array are one reduction pass inside the same native call as
    the update, accumulated in float64 over fixed blocks: the same bits on any number
    of threads.

    Args:
        {PARAMS_DOC}
        lr: learning rate (optax's ``learning_rate``; default 1e-3).
        betas: decay rates of the first and second moments (optax's b1, b2; default (0.9, 0.999)).
        eps: added to the denominator, outside the square root (default 1e-6).
        eps_root: added to the second moment inside the square root (default 0).
        weight_decay: decoupled weight decay, added to the update before the trust
            ratio (default 0).
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` (optax's count, mu, nu).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.array([3.0, 4.0])
        >>> opt = fo.LAMB([w], lr=0.1)
        >>> opt.step([np.array([1.0, 1.0])])   # the step's length is lr * ||w|| = 0.5
        >>> np.round(np.linalg.norm(w - [3.0, 4.0]), 6)
        np.float64(0.5)
    """

    kernel = "lamb"
    half_state = False
    state_names = ("exp_avg", "exp_avg_sq")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        betas=BETAS,
        eps=NONNEGATIVE,
        eps_root=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
    )
    reference_step = staticmethod(reference.lamb)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        eps_root: float = 0.0,
        weight_decay: float = 0.0,
        *,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(params, locals(), backend=backend)
