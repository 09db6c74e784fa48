"""Benchmark the exact integer kernels on the Conv / Gemm / pooling layers of real models.

For every distinct Conv, Gemm/MatMul and MaxPool/AveragePool layer of light_resnet50 and light_squeezenet (the models
shipped in the onnx wheel; shapes read from the model by shape inference) it times, single-threaded,
in this process, on the same 16-bit edge-of-range integer input:
  ort   onnxruntime float32 Conv / Gemm of the same shape (the speed to match),
  fast  verifier.kernels fast path (exact float BLAS under the proven bound; weights prepared once),
  +rq   the kernel ending with the layer's epilogue (bias, rounding shift, saturation: an
        epilogue.Requantize, fused into the float product where its bound allows), what a whole
        fixed-point Conv node costs (onnxruntime's Conv includes its bias too),
  f64   a bare float64 BLAS product of the layer's im2col shape (group x (OC/group x K) @ (K x N*positions)):
        the floor of a direct exact 16-bit x 16-bit product (float32 is exact only below 2**24); Winograd,
        with 2.25x fewer products, can go below it on 3x3 layers,
  +rq8  the same whole node with 8-bit operands (compile_model's matmul_bits=8: float32 BLAS, the epilogue
        summed onto the bias in float64; the narrowing of the input, a few passes, is not included),
  limb  the whole 16-bit node on the limb path (verifier/kernels/limbs.py, forced: VINFER_LIMB_PRODUCTS=always)
        with the weights kept to two 8-bit limbs (|w| <= 32639; a compiled 16-bit weight tensor reaches
        32640..32767, which takes a third limb, only when its largest weight is positive and within 0.4% of
        a power of two), its input non-negative as after a Relu: 3 x 2 integer products of 8 bits (2 x 2 where
        this machine takes 8-bit activation limbs: limbs.x_limb_bits),
  ref   verifier.kernels reference path (int64 loops),
checks fast == ref bit for bit, and prints a table, per-model totals (weighted by how often each
shape occurs) and the ratios fast/ort, +rq/ort, f64/ort, rq8/ort, limb/ort and ref/fast (a pool counts its own
time in the f64, +rq8 and limb totals).

With --winograd it instead times both Winograd algorithms (winograd.py: F(2x2, 3x3) and F(4x4, 3x3), each with the
epilogue and a fused Relu) on every 3x3 stride-1 layer of the models that Winograd takes, and on WINOGRAD_SHAPES; the
"planned" column is the one plan_conv picks.

    .venv/bin/python scripts/bench_kernels.py [--models light_resnet50 light_squeezenet] [--repeat 5] [--no-reference]
                                              [--winograd]
"""

import argparse
import collections
import os
import pathlib
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper, shape_inference
from threadpoolctl import threadpool_info

from verifier.fixedpoint import qmax
from verifier.kernels import (avg_pool_sum, conv, gemm, limbs, max_pool, plan_conv, plan_gemm, prepare,
                              single_threaded, winograd)
from verifier.kernels.epilogue import Requantize
from verifier.kernels.window import normalize, output_shape

BOUND = qmax(16)
# (x shape, output channels) of 3x3 stride-1 convolutions beside the models' own: other sizes and a batch
WINOGRAD_SHAPES = [((1, 64, 56, 56), 64), ((1, 128, 28, 28), 128), ((1, 64, 20, 20), 64), ((1, 48, 13, 13), 192),
                   ((1, 256, 14, 14), 256), ((1, 256, 7, 7), 256), ((4, 32, 32, 32), 32)]
LIGHT = pathlib.Path(onnx.__file__).parent / "backend/test/data/light"


def layer_shapes(model_name: str):
    """(kind, x shape, w shape, attributes) of every Conv and 2-D Gemm/MatMul, with multiplicity."""
    model = shape_inference.infer_shapes(onnx.load(LIGHT / f"{model_name}.onnx"))
    graph = model.graph
    shapes = {}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = tuple(d.dim_value for d in dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    layers = collections.Counter()
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            x, w = shapes[node.input[0]], shapes[node.input[1]]
            rank = len(x) - 2
            key = ("conv", x, w, tuple(attrs.get("strides", [1] * rank)), tuple(attrs.get("pads", [0] * 2 * rank)),
                   tuple(attrs.get("dilations", [1] * rank)), int(attrs.get("group", 1)))
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise SystemExit(f"{model_name}: auto_pad Conv not handled by this bench")
            layers[key] += 1
        elif node.op_type in ("MaxPool", "AveragePool"):
            x = shapes[node.input[0]]
            rank = len(x) - 2
            layers[(node.op_type, x, tuple(attrs["kernel_shape"]), tuple(attrs.get("strides", [1] * rank)),
                    tuple(attrs.get("pads", [0] * 2 * rank)), int(attrs.get("ceil_mode", 0)),
                    int(attrs.get("count_include_pad", 0)))] += 1
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            if attrs.get("transB", 0):
                b = b[::-1]
            layers[("gemm", a, b)] += 1
    return layers


def best_time(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def ort_session(node, x_shape, initializers):
    graph = helper.make_graph(
        [node], "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def edge_values(rng, shape):
    values = rng.integers(-BOUND, BOUND + 1, size=shape)
    return np.where(rng.random(shape) < 0.25, BOUND, values).astype(np.int64)


def bench_pool(key, repeat: int, rng):
    op, x_shape, kernel, strides, pads, ceil_mode, count_include_pad = key
    x = edge_values(rng, x_shape)
    attributes = dict(kernel_shape=list(kernel), strides=list(strides), pads=list(pads), ceil_mode=ceil_mode)
    if op == "AveragePool":
        attributes["count_include_pad"] = count_include_pad
    session = ort_session(helper.make_node(op, ["x"], ["y"], **attributes), x_shape, [])
    geometry = dict(strides=strides, pads=pads, ceil_mode=bool(ceil_mode))
    if op == "MaxPool":
        fast = lambda: max_pool(x, kernel, **geometry)  # noqa: E731
    else:
        fast = lambda: avg_pool_sum(x, kernel, count_include_pad=bool(count_include_pad), **geometry)  # noqa: E731
    label = f"{op} x{x_shape[1:]} k{kernel[0]} s{strides[0]} p{pads[0]} ceil{ceil_mode}"
    t_ort = best_time(lambda: session.run(None, {"x": x.astype(np.float32)}), repeat)
    t_fast = best_time(fast, repeat)
    return label, "int64", t_ort, t_fast, t_fast, None, t_fast, t_fast, None


def float64_floor(kind, x_shape, w_shape, geometry, repeat: int) -> float:
    """Seconds of the bare float64 product a conv / gemm of these shapes needs at least (see f64 above)."""
    if kind == "conv":
        rank = len(x_shape) - 2
        strides, pads, dilations = normalize(rank, geometry["strides"], geometry["pads"], geometry["dilations"])
        positions = x_shape[0] * int(np.prod(output_shape(x_shape[2:], w_shape[2:], strides, pads, dilations)))
        group = geometry["group"]
        a = np.ones((group, w_shape[0] // group, int(np.prod(w_shape[1:]))))
        b = np.ones((group, a.shape[2], positions))
    else:
        a, b = np.ones(x_shape), np.ones(w_shape)
    return best_time(lambda: np.matmul(a, b), repeat)


def bench_layer(key, repeat: int, with_reference: bool, rng):
    if key[0] in ("MaxPool", "AveragePool"):
        return bench_pool(key, repeat, rng)
    kind, x_shape, w_shape = key[:3]
    x, w = edge_values(rng, x_shape), edge_values(rng, w_shape)
    w_prepared = prepare(w, BOUND)
    x_float = x.astype(np.float32)
    if kind == "conv":
        strides, pads, dilations, group = key[3:]
        geometry = dict(strides=strides, pads=pads, dilations=dilations, group=group)
        node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(w_shape[2:]), **{
            k: (list(v) if isinstance(v, tuple) else v) for k, v in geometry.items()})
        session = ort_session(node, x_shape, [numpy_helper.from_array(w.astype(np.float32), "w")])
        fast = lambda: conv(x, w_prepared, x_bound=BOUND, w_bound=BOUND, **geometry)  # noqa: E731
        ref = lambda: conv(x, w, x_bound=BOUND, w_bound=BOUND, path="reference", **geometry)  # noqa: E731
        plan = plan_conv(x_shape, w_shape, group, BOUND, BOUND, strides=strides, pads=pads, dilations=dilations)
        label = f"conv x{x_shape[1:]} w{w_shape} s{strides[0]} p{pads[0]} g{group}"
    else:
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        session = ort_session(node, x_shape, [numpy_helper.from_array(w.astype(np.float32), "w")])
        fast = lambda: gemm(x, w_prepared, a_bound=BOUND, b_bound=BOUND)  # noqa: E731
        ref = lambda: gemm(x, w, a_bound=BOUND, b_bound=BOUND, path="reference")  # noqa: E731
        plan = plan_gemm(x_shape[-1], BOUND, BOUND)
        label = f"gemm {x_shape} @ {w_shape}"
        geometry = None
    epilogue = Requantize(16, bias=rng.integers(-(1 << 40), 1 << 40, w_shape[0] if kind == "conv" else w_shape[-1]))
    if kind == "conv":
        whole_node = lambda: conv(x, w_prepared, x_bound=BOUND, w_bound=BOUND, requantize=epilogue, **geometry)  # noqa: E731
    else:
        whole_node = lambda: gemm(x, w_prepared, a_bound=BOUND, b_bound=BOUND, requantize=epilogue)  # noqa: E731
    t_ort = best_time(lambda: session.run(None, {"x": x_float}), repeat)
    t_fast = best_time(fast, repeat)
    t_epilogue = best_time(whole_node, repeat)
    t_floor = float64_floor(kind, x_shape, w_shape, geometry, repeat)
    x8, w8 = x % 255 - 127, prepare(w % 255 - 127)  # 8-bit operands, as an 8-bit program's product sees them
    if kind == "conv":
        t_narrow = best_time(lambda: conv(x8, w8, x_bound=127, requantize=epilogue, **geometry), repeat)
    else:
        t_narrow = best_time(lambda: gemm(x8, w8, a_bound=127, requantize=epilogue), repeat)
    t_limbs = limb_time(kind, x, w, geometry, epilogue, repeat)
    t_ref = None
    if with_reference:
        start = time.perf_counter()
        reference = ref()
        t_ref = time.perf_counter() - start
        if not np.array_equal(fast(), reference):
            raise SystemExit(f"MISMATCH fast != reference on {label}")
    path = f"{plan.path[-2:]}/{plan.algorithm.replace('winograd', 'wg')[:6]}"
    return label, path, t_ort, t_fast, t_epilogue, t_floor, t_narrow, t_limbs, t_ref


def limb_time(kind, x, w, geometry, epilogue, repeat: int) -> float:
    """Seconds of the whole node on the limb path (see limb above), checked against the float fast path."""
    x, w = np.abs(x), prepare(np.clip(w, -32639, 32639))
    if kind == "conv":
        node = lambda: conv(x, w, x_bound=BOUND, requantize=epilogue, **geometry)  # noqa: E731
    else:
        node = lambda: gemm(x, w, a_bound=BOUND, requantize=epilogue)  # noqa: E731
    expected = node()
    os.environ[limbs.ENVIRONMENT] = "always"
    try:
        if not np.array_equal(node(), expected):
            raise SystemExit("MISMATCH limb path != float path")
        return best_time(node, repeat)
    finally:
        os.environ.pop(limbs.ENVIRONMENT)


def winograd_table(models, repeat: int, rng) -> None:
    """F(2x2, 3x3) against F(4x4, 3x3), each ending with an epilogue, on the shapes Winograd takes (see --winograd)."""
    shapes = dict.fromkeys((x_shape, w_shape[0]) for model in models for key in layer_shapes(model)
                           for kind, x_shape, w_shape, *geometry in [key]
                           if kind == "conv" and w_shape[2:] == (3, 3) and key[3] == (1, 1))
    shapes.update(dict.fromkeys(WINOGRAD_SHAPES))
    print(f"{'x shape':22} {'OC':>5} {'planned':>11} {'2x2 ms':>8} {'4x4 ms':>8} {'4x4/2x2':>8}")
    for x_shape, channels in shapes:
        w_shape, pads = (channels, x_shape[1], 3, 3), (1, 1, 1, 1)  # (the models' 3x3 layers are padded by 1)
        if not winograd.applies(x_shape, w_shape, (1, 1), pads, (1, 1), 1):
            continue
        x, w = edge_values(rng, x_shape), prepare(edge_values(rng, w_shape), BOUND)
        epilogue = Requantize(16, relu=True, bias=rng.integers(-(1 << 40), 1 << 40, channels))  # (Conv + Relu)
        small = winograd.plan(x_shape[1], BOUND, BOUND)
        large = winograd.plan_large(x_shape, pads, BOUND, BOUND) or winograd.GemmPlan(
            "float64", x_shape[1], "timed only", algorithm="winograd4x4")
        runs = [lambda plan=plan: winograd.conv3x3(x, w, plan, (BOUND, BOUND), pads, x_shape[2:], epilogue)
                for plan in (small, large)]
        if not np.array_equal(runs[0](), runs[1]()):
            raise SystemExit(f"MISMATCH F(2x2, 3x3) != F(4x4, 3x3) on {x_shape} x {channels}")
        t_small, t_large = (best_time(run, repeat) for run in runs)
        planned = plan_conv(x_shape, w_shape, 1, BOUND, BOUND, strides=(1, 1), pads=pads, dilations=(1, 1)).algorithm
        print(f"{str(x_shape):22} {channels:5d} {planned:>11} {t_small * 1e3:8.3f} {t_large * 1e3:8.3f} "
              f"{t_large / t_small:8.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["light_resnet50", "light_squeezenet"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="skip the slow int64 reference timing")
    parser.add_argument("--winograd", action="store_true", help="time the two Winograd algorithms instead")
    args = parser.parse_args()
    blas = [f"{i['internal_api']} {i['version']} ({i.get('architecture')})" for i in threadpool_info()
            if i["user_api"] == "blas"]
    print(f"BLAS: {', '.join(blas)}; onnxruntime {ort.__version__}; all single-threaded; best of {args.repeat}")
    os.environ[limbs.ENVIRONMENT] = "off"  # the fast columns are the float paths; the limb column forces its own
    rng = np.random.default_rng(0)
    if args.winograd:
        with single_threaded():
            winograd_table(args.models, args.repeat, rng)
        return
    with single_threaded():
        for model_name in args.models:
            layers = layer_shapes(model_name)
            print(f"\n{model_name}: {sum(layers.values())} layers, {len(layers)} distinct shapes")
            header = (f"{'layer':58} {'n':>3} {'path':>9} {'ort ms':>8} {'fast ms':>8} {'+rq ms':>8} {'f64 ms':>8} "
                      f"{'+rq8 ms':>8} {'limb ms':>8} {'ref ms':>9} {'fast/ort':>8} {'+rq/ort':>8} {'f64/ort':>8} "
                      f"{'rq8/ort':>8} {'limb/ort':>8} {'ref/fast':>8}")
            print(header)
            totals = collections.Counter()
            for key, count in layers.items():
                label, path, t_ort, t_fast, t_rq, t_floor, t_rq8, t_limbs, t_ref = bench_layer(
                    key, args.repeat, not args.no_reference, rng)
                totals["ort"] += count * t_ort
                totals["fast"] += count * t_fast
                totals["rq"] += count * t_rq
                totals["f64"] += count * (t_floor if t_floor is not None else t_fast)  # pools: their own time
                totals["rq8"] += count * t_rq8
                totals["limbs"] += count * t_limbs
                totals["ref"] += count * (t_ref if t_ref is not None else t_fast)
                ref_ms = f"{t_ref * 1e3:9.2f}" if t_ref is not None else f"{'-':>9}"
                ratio_ref = f"{t_ref / t_fast:8.1f}" if t_ref is not None else f"{'-':>8}"
                floor_ms = f"{t_floor * 1e3:8.2f}" if t_floor is not None else f"{'-':>8}"
                floor_ratio = f"{t_floor / t_ort:8.2f}" if t_floor is not None else f"{'-':>8}"
                print(f"{label:58.58} {count:3d} {path:>9} {t_ort * 1e3:8.2f} {t_fast * 1e3:8.2f} {t_rq * 1e3:8.2f} "
                      f"{floor_ms} {t_rq8 * 1e3:8.2f} {t_limbs * 1e3:8.2f} {ref_ms} {t_fast / t_ort:8.2f} "
                      f"{t_rq / t_ort:8.2f} {floor_ratio} {t_rq8 / t_ort:8.2f} {t_limbs / t_ort:8.2f} {ratio_ref}")
            ref_total = f"{totals['ref'] * 1e3:9.1f}" if not args.no_reference else f"{'-':>9}"
            ref_ratio = f"{totals['ref'] / totals['fast']:8.1f}" if not args.no_reference else f"{'-':>8}"
            print(f"{'TOTAL ' + model_name:58} {sum(layers.values()):3d} {'':>9} {totals['ort'] * 1e3:8.1f} "
                  f"{totals['fast'] * 1e3:8.1f} {totals['rq'] * 1e3:8.1f} {totals['f64'] * 1e3:8.1f} "
                  f"{totals['rq8'] * 1e3:8.1f} {totals['limbs'] * 1e3:8.1f} {ref_total} "
                  f"{totals['fast'] / totals['ort']:8.2f} {totals['rq'] / totals['ort']:8.2f} "
                  f"{totals['f64'] / totals['ort']:8.2f} {totals['rq8'] / totals['ort']:8.2f} "
                  f"{totals['limbs'] / totals['ort']:8.2f} {ref_ratio}")


if __name__ == "__main__":
    main()
