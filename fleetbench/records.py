"""The per-request record: the raw fact every figure is computed from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the load generator saw it.

    Times are Unix seconds on the clock of the node that sent the request;
    the controller shifts them by the node's measured clock offset before
    computing cluster figures.
    """

    index: int
    start_time: float
    end_time: float
    success: bool
    ttft_s: float = 0.0
    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    tpot_s: float = 0.0
    itl_s: tuple[float, ...] = field(default_factory=tuple)
    error: str = ""
    point: str = ""

    def shifted(self, offset_s: float) -> RequestRecord:
        """The same record on a clock `offset_s` seconds behind this one's."""
        return RequestRecord(
            index=self.index,
            start_time=self.start_time - offset_s,
            end_time=self.end_time - offset_s,
            success=self.success,
            ttft_s=self.ttft_s,
            latency_s=self.latency_s,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            tpot_s=self.tpot_s,
            itl_s=self.itl_s,
            error=self.error,
            point=self.point,
        )
