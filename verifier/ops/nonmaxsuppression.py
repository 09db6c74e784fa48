import numpy as np

from verifier.ops import CompileContext, Lowering
from verifier.ops._elementwise import exact_threshold


class NonMaxSuppression:
    """Per batch and class, greedy non-max suppression as the ONNX reference: boxes scoring above
    score_threshold, taken by score (ties: the lower index first), each kept unless its IoU with a box already
    kept exceeds iou_threshold, up to max_output_boxes_per_class; output (selected, 3) of [batch, class,
    box] as plain int64. All in integers: corners from the boxes' integers ([y1, x1, y2, x2] in any order, or
    centre and size at frac + 1), areas exact; with the float32 threshold t = M * 2**E exactly,
    IoU > t  <=>  inter > floor(M * union * 2**E) (inter an integer); a score s > t_s  <=>  q > floor(t_s *
    2**fs). The thresholds must be constants; max_output_boxes_per_class may be computed at run time."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        boxes, scores = ctx.inputs[0], ctx.inputs[1]
        if boxes.frac is None or scores.frac is None:
            ctx.unsupported("needs fixed-point (float) boxes and scores")
        attrs = {"center": int(ctx.attr("center_point_box", 0))}
        absorbed = set()
        iou = ctx.inputs[3] if len(ctx.inputs) > 3 else None
        if iou is not None:
            if not iou.is_const:
                ctx.unsupported("an iou_threshold computed at run time")
            mantissa, exponent = np.frexp(np.float64(np.asarray(iou.value, dtype=np.float32).reshape(-1)[0]))
            attrs["iou_m"], attrs["iou_shift"] = int(np.ldexp(mantissa, 24)), int(24 - exponent)
            absorbed.add(3)
        score = ctx.inputs[4] if len(ctx.inputs) > 4 else None
        if score is not None:
            if not score.is_const:
                ctx.unsupported("a score_threshold computed at run time")
            threshold = np.asarray(score.value, dtype=np.float32).reshape(-1)[0]
            attrs["score_floor"] = int(exact_threshold(threshold, scores.frac, "floor"))  # (s > t: q > floor)
            absorbed.add(4)
        return Lowering(out_fracs=[None], attrs=attrs, absorbed=absorbed)

    @staticmethod
    def run(inputs, attrs, consts):
        boxes, scores = inputs[0], inputs[1]
        limit = inputs[2] if len(inputs) > 2 else None
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[::2] != boxes.shape[:2]:
            raise ValueError(f"NonMaxSuppression: boxes {boxes.shape} and scores {scores.shape} do not fit")
        if limit is None or np.size(limit) == 0:
            return [np.zeros((0, 3), dtype=np.int64)]
        limit = max(int(np.asarray(limit).reshape(-1)[0]), 0)
        low, high = _corners(boxes, attrs["center"])
        selected = []
        for batch in range(boxes.shape[0]):
            suppress = _suppression(low[batch], high[batch], attrs)
            for cls in range(scores.shape[1]):
                for index in _greedy(scores[batch, cls], suppress, limit, attrs):
                    selected.append((batch, cls, index))
        return [np.array(selected, dtype=np.int64).reshape(-1, 3)]

    @staticmethod
    def cost(shapes, attrs, consts):
        """Work: every pair of boxes per batch (the suppression matrix), every score per class."""
        batches, boxes = int(shapes[0][0]), int(shapes[0][1])
        classes = int(shapes[1][1])
        return batches * (boxes * boxes + classes * boxes * 4)

    @staticmethod
    def output_size(inputs, attrs, consts):
        boxes, scores = inputs[0].shape, inputs[1].shape
        return max(int(boxes[0]) * int(boxes[1]) ** 2, int(boxes[0]) * int(scores[1]) * int(boxes[1]) * 3)


def _corners(boxes: np.ndarray, center: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) corners, (batch, box, [y, x]) each, at the boxes' frac (+ 1 for centre boxes)."""
    if center:
        middle, size = boxes[..., 1::-1] * 2, boxes[..., 3:1:-1]  # (x, y), (w, h) reversed to (y, x)
        return middle - size, middle + size
    return np.minimum(boxes[..., 0:2], boxes[..., 2:4]), np.maximum(boxes[..., 0:2], boxes[..., 2:4])


def _suppression(low: np.ndarray, high: np.ndarray, attrs: dict) -> np.ndarray:
    """[i, j]: box j is suppressed by a kept box i (IoU > the threshold, exactly), for one batch."""
    if "iou_m" not in attrs:
        iou_m, iou_shift = 0, 0  # (no threshold: 0, and any overlap suppresses)
    else:
        iou_m, iou_shift = attrs["iou_m"], attrs["iou_shift"]
    extent = np.clip(np.minimum(high[:, None], high[None]) - np.maximum(low[:, None], low[None]), 0, None)
    inter = extent[..., 0] * extent[..., 1]
    area = np.prod(high - low, axis=-1)
    union = area[:, None] + area[None] - inter
    valid = (inter > 0) & (area[:, None] > 0) & (area[None] > 0) & (union > 0)
    if iou_shift >= 0:
        over = inter > (iou_m * union) >> min(iou_shift, 62)
    else:  # (a threshold of 2**24 or more: nothing exceeds it)
        over = np.zeros(inter.shape, dtype=bool)
    return valid & over


def _greedy(scores: np.ndarray, suppress: np.ndarray, limit: int, attrs: dict) -> list[int]:
    candidates = np.arange(scores.size)
    if "score_floor" in attrs:
        candidates = candidates[scores > attrs["score_floor"]]
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    kept: list[int] = []
    for index in order:
        if len(kept) >= limit:
            break
        if not kept or not np.any(suppress[kept, index]):
            kept.append(int(index))
    return kept
