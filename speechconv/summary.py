"""Per-layer summary of a model: output shape, parameters, MACs and receptive field (``speechconv inspect``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechconv.blocks.functional import ReceptiveField
from speechconv.blocks.streaming import StreamingModule


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    field: ReceptiveField | None  # along the last axis; None after a fully connected layer


@dataclass
class Summary:
    rows: list[LayerRow]
    input_shape: tuple[int, ...]
    total_params: int
    total_macs: int

    def format(self, hop_length: int | None = None, win_length: int | None = None,
               sample_rate: int | None = None) -> str:
        """Text table; with front-end settings, receptive fields are also shown in milliseconds."""
        unit = "frames" if sample_rate else "px"
        head = ["layer", "type", "output shape", "params", "MACs", f"RF ({unit})"]
        if sample_rate:
            head.append("RF (ms)")
        lines = [head]
        for r in self.rows:
            line = [r.name, r.kind, "x".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}"]
            line.append(f"{r.field.size} /{r.field.stride}" if r.field else "all")
            if sample_rate:
                ms = r.field.seconds(hop_length, win_length, sample_rate) * 1000 if r.field else None
                line.append(f"{ms:.0f}" if ms is not None else "all")
            lines.append(line)
        total = ["total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}", ""]
        if sample_rate:
            total.append("")
        lines.append(total)
        widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
        out = []
        for i, row in enumerate(lines):
            cells = [str(c).ljust(w) if j < 3 else str(c).rjust(w) for j, (c, w) in enumerate(zip(row, widths))]
            out.append("  ".join(cells).rstrip())
            if i == 0 or i == len(lines) - 2:
                out.append("  ".join("-" * w for w in widths))
        out.append(f"input {'x'.join(map(str, self.input_shape))}; total parameters: {self.total_params:,}; "
                   f"MACs per example: {self.total_macs:,}")
        return "\n".join(out)


def top_level_units(model: nn.Module) -> list[tuple[str, StreamingModule]]:
    """Blocks that are reported as one row: units not nested inside another unit."""
    units: list[tuple[str, StreamingModule]] = []
    for name, module in model.named_modules():
        if isinstance(module, StreamingModule) and module.is_unit and module is not model:
            if not any(name.startswith(prefix + ".") for prefix, _ in units):
                units.append((name, module))
    return units


@torch.no_grad()
def summarize(model: nn.Module, input_shape: tuple[int, ...]) -> Summary:
    """Run one zero example of ``input_shape`` (no batch axis) through the model and tabulate its units."""
    units = top_level_units(model)
    seen: list[tuple[str, StreamingModule, tuple, tuple]] = []

    def hook(name, unit):
        def record(module, args, output):
            seen.append((name, unit, tuple(args[0].shape[1:]), tuple(output.shape[1:])))
        return record

    handles = [unit.register_forward_hook(hook(name, unit)) for name, unit in units]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros((1,) + tuple(input_shape)))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    rows = []
    field: ReceptiveField | None = ReceptiveField()
    # models of parallel branches (an ensemble's "members.<i>") start a receptive field per branch
    parallel = getattr(model, "parallel_branches", None)
    branch = None
    for name, unit, in_shape, out_shape in seen:
        if parallel and name.startswith(parallel + ".") and name.split(".")[1] != branch:
            branch, field = name.split(".")[1], ReceptiveField()
        geometry = unit.geometry()
        if field is not None:
            if len(out_shape) == 1:  # fully connected: sees everything
                field = None
            else:
                for g in geometry:
                    field = field.then(g)
        params = sum(p.numel() for p in unit.parameters())
        macs = unit.count_macs(in_shape)
        rows.append(LayerRow(name.replace("layers.", ""), type(unit).__name__, out_shape, params, macs, field))
    total_params = sum(p.numel() for p in model.parameters())
    return Summary(rows, tuple(input_shape), total_params, sum(r.macs for r in rows))
