#!/usr/bin/env python3
"""Per-stage parity of detbench's native engine with torchvision eager (issue 15), on the GPU:
torchvision's intermediate tensors for one image (transform output, FPN levels, RPN proposals,
RoI-head detections before rescaling) against the engine's dumps of the same stages
(`detbench-native-bench --stages DIR`, one folder per model and precision).

    python3 tools/native/stage_parity.py --models-dir DIR --image FILE --stages DIR \\
        --models fasterrcnn_resnet50_fpn,retinanet_resnet50_fpn --out FILE.json

Prints and writes a small summary per stage: max |difference| and the relative L2 error
||ours - eager|| / ||eager|| for dense tensors; for proposals and detections the share of eager's
boxes found among ours (IoU >= 0.99; detections also same class, score within 1e-3). Where the
engine dumped them (body.*, rpn.*), the ResNet stages and the RPN step by step, torchvision's
RPN filtering and NMS run on the engine's own candidates, and the box head on the engine's own
pyramid and proposals (detections_on_our_inputs): each stage judged on the same inputs.
"""
import argparse
import json
import os
from collections import OrderedDict

import cv2
import numpy as np
import torch
from torchvision.models import detection
from torchvision.ops import box_iou


def dense(ours, eager):
    ours = torch.from_numpy(ours).double()
    eager = eager.detach().double().cpu()
    if ours.shape != eager.shape:
        return {"shape_ours": list(ours.shape), "shape_eager": list(eager.shape)}
    diff = ours - eager
    return {"max_abs": float(diff.abs().max()), "rel_l2": float(diff.norm() / eager.norm().clamp_min(1e-30))}


def box_share(ours, eager, iou=0.99, labels=None, scores=None):
    if len(eager) == 0:
        return {"eager": 0, "ours": int(len(ours)), "found_share": 1.0}
    if len(ours) == 0:
        return {"eager": int(len(eager)), "ours": 0, "found_share": 0.0}
    m = box_iou(torch.as_tensor(eager).float(), torch.as_tensor(ours).float()) >= iou
    if labels is not None:
        m &= torch.as_tensor(labels[0])[:, None] == torch.as_tensor(labels[1])[None, :]
    if scores is not None:
        m &= (torch.as_tensor(scores[0])[:, None] - torch.as_tensor(scores[1])[None, :]).abs() <= 1e-3
    return {"eager": int(len(eager)), "ours": int(len(ours)), "found_share": float(m.any(1).float().mean())}


def load(folder, name):
    return np.load(os.path.join(folder, name + ".npy"))


def has(folder, name):
    return os.path.exists(os.path.join(folder, name + ".npy"))


def body_stages(model, tensors, folder, out):
    """The ResNet's stem and stages (body.*), each computed by eager from eager's previous one."""
    if not has(folder, "body.stem"):
        return
    body = model.backbone.body
    x = body.maxpool(body.relu(body.bn1(body.conv1(tensors))))
    out["body.stem"] = dense(load(folder, "body.stem"), x.float())
    for i in range(1, 5):
        x = getattr(body, f"layer{i}")(x)
        out[f"body.layer{i}"] = dense(load(folder, f"body.layer{i}"), x.float())


def ours(folder, name, like):
    """One of the engine's dumps as a tensor on `like`'s device, in its dtype (fp16 dumps are
    written as float32, which holds them exactly)."""
    return torch.from_numpy(load(folder, name)).to(like.device, like.dtype)


def rpn_stages(model, image_list, features, folder, out):
    """The RPN step by step (rpn.*): the head and decoding against eager's own, then torchvision's
    filtering and batched_nms run on the engine's own top-n candidates, so that a difference
    upstream does not count: an NMS difference shows as rpn.nms_on_our_candidates."""
    if not has(folder, "rpn.objectness"):
        return
    from torchvision.models.detection.rpn import concat_box_prediction_layers
    from torchvision.ops import boxes as box_ops
    rpn, feats = model.rpn, list(features.values())
    objectness, deltas = rpn.head(feats)
    anchors = rpn.anchor_generator(image_list, feats)
    per_level = [o[0].shape[0] * o[0].shape[1] * o[0].shape[2] for o in objectness]
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    proposals = rpn.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
    objectness = objectness.reshape(len(anchors), -1)
    out["rpn.objectness"] = dense(load(folder, "rpn.objectness"), objectness.float())
    out["rpn.proposals"] = dense(load(folder, "rpn.proposals"), proposals.float())
    top = rpn._get_top_n_idx(objectness, per_level)
    top_ours = torch.from_numpy(load(folder, "rpn.top_idx")).to(top.device)
    out["rpn.top_idx_same_share"] = float((top_ours == top).float().mean()) if top.shape == top_ours.shape else None
    # From here on the engine's candidates: its objectness and decoded boxes at its top-n.
    t = top_ours[0]
    levels = torch.repeat_interleave(torch.arange(len(per_level), device=t.device),
                                     torch.tensor(per_level, device=t.device))[t]
    obj_ours = ours(folder, "rpn.objectness", objectness)[0][t]
    boxes = box_ops.clip_boxes_to_image(ours(folder, "rpn.proposals", proposals)[0][t], image_list.image_sizes[0])
    scores = torch.sigmoid(obj_ours)
    out["rpn.scores"] = dense(load(folder, "rpn.scores")[0], scores.float())
    out["rpn.boxes"] = dense(load(folder, "rpn.boxes")[0], boxes.float())
    index = box_ops.remove_small_boxes(boxes, rpn.min_size)
    index = index[torch.where(scores[index] >= rpn.score_thresh)[0]]
    valid = torch.from_numpy(load(folder, "rpn.valid")[0].astype(bool)).to(index.device)
    out["rpn.valid_same"] = bool(torch.equal(torch.where(valid)[0], index))
    keep = box_ops.batched_nms(boxes[index], scores[index], levels[index], rpn.nms_thresh)
    expected = index[keep[: rpn.post_nms_top_n()]].cpu().numpy()
    kept = load(folder, "rpn.kept")[0]
    kept = kept[kept >= 0]
    first = next((i for i, (a, b) in enumerate(zip(expected, kept)) if a != b), min(len(expected), len(kept)))
    out["rpn.nms_on_our_candidates"] = {
        "torchvision": int(len(expected)), "ours": int(len(kept)), "same_list": bool(np.array_equal(expected, kept)),
        "same_set_share": len(set(expected.tolist()) & set(kept.tolist())) / max(len(expected), 1),
        "first_difference": int(first), "candidates": int(len(index)),
        "numel_for_trick": int(boxes[index].numel())}


def rcnn_stages(model, images, folder, out):
    image_list, _ = model.transform(images)
    out["images"] = dense(load(folder, "images"), image_list.tensors.float())
    body_stages(model, image_list.tensors, folder, out)
    features = model.backbone(image_list.tensors)
    for i, f in enumerate(features.values()):
        out[f"features.{i}"] = dense(load(folder, f"features.{i}"), f.float())
    if not hasattr(model, "rpn"):
        return
    rpn_stages(model, image_list, features, folder, out)
    proposals, _ = model.rpn(image_list, features)
    valid = torch.from_numpy(load(folder, "proposals.valid")[0].astype(bool))
    out["proposals"] = box_share(load(folder, "proposals.boxes")[0][valid.numpy()], proposals[0].float().cpu().numpy())
    dets, _ = model.roi_heads(features, proposals, image_list.image_sizes)
    out["detections"] = detections_share(folder, dets)
    # The box head on the engine's own pyramid and proposals: a difference here is the head's.
    ours_features = OrderedDict((k, ours(folder, f"features.{i}", f)) for i, (k, f) in enumerate(features.items()))
    ours_proposals = [ours(folder, "proposals.boxes", proposals[0])[0][valid.to(proposals[0].device)]]
    dets, _ = model.roi_heads(ours_features, ours_proposals, image_list.image_sizes)
    out["detections_on_our_inputs"] = detections_share(folder, dets)
    box_head_stages(model.roi_heads, ours_features, ours_proposals, image_list.image_sizes, folder, out)


def box_head_stages(heads, features, proposals, image_sizes, folder, out):
    """The box head step by step (box.*) on the engine's pyramid and proposals (one image: its
    real proposals are the first slots), and box.fc7_in_all_slots: torchvision's box head on the
    same proposals inside a batch of every slot (as the engine runs it, with fixed shapes) against
    the real rows alone (as torchvision runs it). A difference there would be the GEMMs' rounding
    changing with the row count."""
    if not has(folder, "box.pooled"):
        return
    pooled = heads.box_roi_pool(features, proposals, image_sizes)
    m = pooled.shape[0]
    out["box.pooled"] = dense(load(folder, "box.pooled")[:m], pooled.float())
    fc7 = heads.box_head(pooled)
    out["box.fc7"] = dense(load(folder, "box.fc7")[:m], fc7.float())
    logits, regression = heads.box_predictor(fc7)
    out["box.class_logits"] = dense(load(folder, "box.class_logits")[:m], logits.float())
    out["box.regression"] = dense(load(folder, "box.regression")[:m], regression.float())
    every_slot = ours(folder, "box.pooled", pooled)
    out["box.fc7_in_all_slots"] = dict(dense(heads.box_head(every_slot)[:m].float().cpu().numpy(), fc7.float()),
                                       rows=int(m), slots=int(every_slot.shape[0]))


def detections_share(folder, dets):
    n = int(load(folder, "detections.count")[0])
    return box_share(
        load(folder, "detections.boxes")[0][:n], dets[0]["boxes"].float().cpu().numpy(),
        labels=(dets[0]["labels"].cpu().numpy(), load(folder, "detections.labels")[0][:n]),
        scores=(dets[0]["scores"].float().cpu().numpy(), load(folder, "detections.scores")[0][:n]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models-dir", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--stages", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda:0", help="cpu: check the script against CPU dumps (fp32 only)")
    args = p.parse_args()
    device = torch.device(args.device)
    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    image = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float() / 255.0
    summary = {}
    for name in [m for m in args.models.split(",") if m]:
        scripted = torch.jit.load(os.path.join(args.models_dir, f"{name}.pt"), map_location="cpu")
        for precision in ("fp32", "fp16"):
            folder = os.path.join(args.stages, f"{name}_{precision}")
            if not os.path.isdir(folder):
                continue
            model = getattr(detection, name)(weights=None, weights_backbone=None)
            model.load_state_dict(scripted.state_dict())
            model = model.eval().to(device)
            x = image.to(device)
            if precision == "fp16":
                model, x = model.half(), x.half()
            out = {}
            try:
                with torch.no_grad():
                    rcnn_stages(model, [x], folder, out)
            except Exception as e:  # recorded; the other stages and models go on
                out["error"] = f"{type(e).__name__}: {e}"
            summary[f"{name}_{precision}"] = out
            print(name, precision, json.dumps(out), flush=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
