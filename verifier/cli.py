"""Commands this package adds to `vinfer` (see sdk/cli.py): compile, run, inspect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.command("compile")(compile_command)
    app.command("run")(run_command)
    app.command("inspect")(inspect_command)


def compile_command(
    model: Path = typer.Argument(..., help="ONNX model file"),
    output: Path = typer.Option(..., "-o", "--output", help="where to write the program (.vfp)"),
    calibrate: Optional[Path] = typer.Option(None, "--calibrate", help=".npz of representative inputs, by input name"),
    matmul_bits: int = typer.Option(16, "--matmul-bits", help="operand width of Conv/Gemm/MatMul products: 16, "
                                    "or 8 (about 1.4x faster on conv nets, at 8-bit accuracy)"),
) -> None:
    """Compile an ONNX model to a deterministic fixed-point program and print its hash."""
    with _user_errors():
        from verifier import compile_model

        calibration = _load_npz(calibrate) if calibrate else None
        program = compile_model(model, calibration=calibration, matmul_bits=matmul_bits)
        program.save(output)
        typer.echo(f"program {program.hash}")
        typer.echo(f"wrote {output} ({len(program.to_bytes())} bytes, {len(program.nodes)} nodes, "
                   f"{program.parameter_count()} parameters)")
        if calibration is not None:
            _report_error(model, program, calibration)


def run_command(
    program: Path = typer.Argument(..., help="compiled program (.vfp) or ONNX model"),
    input: Path = typer.Option(..., "--input", "-i", help=".npz with one array per program input"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the (float) outputs to this .npz"),
    calibrate: Optional[Path] = typer.Option(None, "--calibrate", help="calibration .npz when PROGRAM is ONNX"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary"),
    path: Optional[str] = typer.Option(None, "--path", help="force the GEMM/conv path: fast or reference"),
) -> None:
    """Run a program on inputs and print the commitment (keccak256 of the canonical output bytes)."""
    with _user_errors():
        import numpy as np

        from verifier import InferenceSession
        from verifier.fixedpoint import dequantize

        if path not in (None, "fast", "reference"):
            raise typer.BadParameter("--path must be fast or reference")
        session = InferenceSession(program, calibration=_load_npz(calibrate) if calibrate else None, path=path)
        feeds = _load_npz(input)
        input_bytes = session.encode_inputs(feeds)
        result = session.run_fixed(feeds)
        infos = {o.name: o for o in session.get_outputs()}
        floats = {name: (dequantize(q, infos[name].frac) if infos[name].frac is not None else q)
                  for name, q in result.outputs.items()}
        if output:
            np.savez(output, **floats)
        if as_json:
            from verifier.encoding import keccak_hex

            summary = {"program": session.program.hash, "input_hash": keccak_hex(input_bytes),
                       "commitment": result.commitment,
                       "outputs": {name: {"shape": list(q.shape), "frac": infos[name].frac,
                                          "argmax": _argmax(q)} for name, q in result.outputs.items()}}
            typer.echo(json.dumps(summary, indent=2))
        else:
            typer.echo(f"commitment {result.commitment}")
            for name, value in floats.items():
                typer.echo(f"{name}: shape {tuple(value.shape)}" + (f" -> wrote {output}" if output else ""))


def inspect_command(
    target: Path = typer.Argument(..., help="compiled program (.vfp) or ONNX model"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show a program's or model's ops, shapes, scales, parameter count and execution paths; for an ONNX
    model also which ops are unsupported and where. Exits 1 when a model has unsupported ops."""
    with _user_errors():
        from verifier.program import Program

        raw = target.read_bytes() if target.is_file() else b""
        if not raw:
            raise _Usage(f"no such file: {target}")
        report = _inspect_program(Program.from_bytes(raw)) if Program.is_program(raw) else _inspect_model(target)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print_report(report)
        if report.get("unsupported"):
            raise typer.Exit(1)


def _inspect_program(program) -> dict:
    from verifier.ops._common import epilogue_plan, limb_plan

    nodes = []
    for node in program.nodes:
        fused = ("+Relu" if node.attrs.get("relu") else "") + ("+MaxPool" if node.attrs.get("pool") else "")
        entry = {"op": node.op + fused, "name": node.name, "outputs": node.outputs, "out_fracs": node.out_fracs}
        if "path" in node.attrs:
            entry["path"] = node.attrs["path"]
            entry["path_reason"] = node.attrs.get("path_reason", "")
            epilogue = epilogue_plan(node.op, node.attrs, node.consts)
            if epilogue:
                entry["epilogue"] = epilogue
            on_limbs = limb_plan(node.op, node.attrs, node.consts)
            if on_limbs:
                entry["limbs"] = on_limbs
            shifts = {key[0]: node.attrs[key] for key in ("x_shift", "a_shift", "b_shift") if key in node.attrs}
            if shifts:
                entry["narrowed"] = {"bits": node.attrs["operand_bits"], "shifts": shifts}
        nodes.append(entry)
    return {"kind": "program", "hash": program.hash, "bytes": len(program.to_bytes()), "meta": program.meta,
            "inputs": [t.to_json() for t in program.inputs], "outputs": [t.to_json() for t in program.outputs],
            "parameters": program.parameter_count(), "ops": program.op_counts(), "nodes": nodes}


def _inspect_model(path: Path) -> dict:
    import numpy as np

    from verifier.compiler import prepare_graph
    from verifier.compiler.lower import unsupported_nodes

    graph = prepare_graph(path)
    ops: dict[str, int] = {}
    for node in graph.nodes:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    used = {n for node in graph.nodes for n in node.input}
    parameters = sum(int(np.asarray(v).size) for k, v in graph.constants.items() if k in used)
    return {"kind": "onnx", "opset": graph.opset, "producer": graph.producer,
            "inputs": [{"name": n, "shape": list(s or ()), "dtype": str(np.dtype(d))} for n, s, d in graph.inputs],
            "outputs": [{"name": n, "shape": list(graph.shapes.get(n) or ())} for n in graph.outputs],
            "parameters": parameters, "ops": dict(sorted(ops.items())),
            "nodes": [{"op": n.op_type, "name": n.name, "outputs": list(n.output),
                       "shapes": [list(graph.shapes.get(o) or ()) for o in n.output]} for n in graph.nodes],
            "unsupported": [{"op": op, "node": name, "opset": graph.opset} for op, name in unsupported_nodes(graph)]}


def _print_report(report: dict) -> None:
    if report["kind"] == "program":
        typer.echo(f"program {report['hash']}  ({report['bytes']} bytes, opset {report['meta'].get('opset')}, "
                   f"{'calibrated' if report['meta'].get('calibrated') else 'uncalibrated'}, "
                   f"{report['meta'].get('matmul_bits', 16)}-bit products)")
    else:
        typer.echo(f"ONNX model, opset {report['opset']}, producer {report['producer'] or '?'}")
    for kind in ("inputs", "outputs"):
        for t in report[kind]:
            scale = f"  scale 2^-{t['frac']}" if t.get("frac") is not None else ""
            if t.get("feature_shifts") is not None:
                scale += f", feature f at 2^-({t['frac']} + shift[f]), shift {t['feature_shifts']}"
            if kind == "outputs" and report["kind"] == "program":
                scale += f"  committed as int{t.get('bits', 64)}"
            typer.echo(f"{kind[:-1]:7} {t['name']}  shape {_dims(t['shape'])}  {t.get('dtype', '')}{scale}")
    typer.echo(f"parameters {report['parameters']}")
    typer.echo("ops " + ", ".join(f"{op} x{count}" for op, count in report["ops"].items()))
    for node in report["nodes"]:
        detail = f"  out frac {node['out_fracs']}" if "out_fracs" in node else f"  shapes {node['shapes']}"
        if "path" in node:
            detail += f"  path {node['path']}: {node['path_reason']}"
            if node.get("narrowed"):
                shifts = ", ".join(f"{name} rounded >> {shift}" if shift else f"{name} already at its scale"
                                   for name, shift in node["narrowed"]["shifts"].items())
                detail += f"; operands narrowed to {node['narrowed']['bits']} bits ({shifts})"
            if node.get("epilogue"):
                detail += f"; epilogue {node['epilogue']}"
            if node.get("limbs"):
                detail += f"; limbs: {node['limbs']}"
        typer.echo(f"  {node['op']:20} {node['name']}{detail}")
    for item in report.get("unsupported", []):
        typer.echo(f"UNSUPPORTED {item['op']} at node {item['node']!r} (opset {item['opset']})", err=True)


def _dims(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _argmax(q):
    import numpy as np

    if q.ndim == 2 and q.shape[1] > 1:
        return [int(i) for i in np.argmax(q, axis=1)]
    return None


def _report_error(model: Path, program, calibration: dict) -> None:
    """The program against the float model (onnxruntime) on the calibration inputs."""
    from verifier.compare import against_float

    try:
        errors = against_float(model, program, calibration)
    except Exception as exc:  # noqa: BLE001 - a report only: the program is compiled and saved either way
        typer.echo(f"(not compared with onnxruntime on the calibration inputs: {str(exc).splitlines()[0][:160]})")
        return
    for error in errors:
        agreement = "" if error.top1_agreement is None else f", top-1 agreement {error.top1_agreement:.1%}"
        typer.echo(f"on {error.samples} calibration inputs, output {error.name!r} is within {error.max_error:.3g} of "
                   f"onnxruntime float32 ({error.relative:.2%} of its largest value{agreement})")


def _load_npz(path: Path) -> dict:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise _Usage(f"cannot read {path} as .npz: {exc}") from exc


class _Usage(Exception):
    pass


class _user_errors:
    """Turn the verifier's errors (and unreadable files) into a message and exit status 1."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from verifier.errors import VerifierError

        if exc is None or isinstance(exc, (typer.Exit, typer.Abort)):
            return False
        if isinstance(exc, (VerifierError, _Usage, typer.BadParameter)):
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1)
        if isinstance(exc, OSError):
            typer.echo(f"error: {exc.strerror or exc}: {getattr(exc, 'filename', '')}", err=True)
            raise typer.Exit(1)
        return False
