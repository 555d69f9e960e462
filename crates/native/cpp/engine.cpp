// detbench native engine: planning a batch, preprocessing, reading results, and the CPU path
// (see engine.h; the CUDA path is engine_cuda.cpp).
#include "engine_impl.h"

#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "ops.h"

namespace dn {

Engine::~Engine() = default;

Engine::Engine(const std::string& path, const Settings& s) : s_(s), path_(path) {
  if (s.half && !is_cuda(s)) {
    throw EngineError(ErrorKind::UnsupportedPrecision,
                      "the native engine runs fp16 on CUDA only (--device cuda); on the CPU use fp32");
  }
  if (is_cuda(s)) cuda_ = make_cuda_state(s);
  c10::InferenceMode guard;
  file_ = std::make_unique<ModelFile>(path);
  detector_ = std::make_unique<Detector>(*file_, s_);
  const auto& pre = detector_->preprocessing();
  auto options = at::TensorOptions().dtype(act_dtype(s_)).device(
      is_cuda(s_) ? at::Device(at::kCUDA, s_.device) : at::Device(at::kCPU));
  // GeneralizedRCNNTransform.normalize: torch.as_tensor(mean, dtype=image.dtype).
  mean_ = at::tensor(pre.mean, at::kDouble).to(options).view({3, 1, 1});
  std_ = at::tensor(pre.std, at::kDouble).to(options).view({3, 1, 1});
  // pixel / 255 as torchvision's references compute it on the host (PILToTensor +
  // ConvertImageDtype: float32 true division), then cast to the engine's dtype; a table of the
  // 256 values gathered on the device gives exactly those numbers.
  std::vector<float> table(256);
  for (int v = 0; v < 256; v++) table[v] = static_cast<float>(v) / 255.0f;
  lut_ = at::tensor(table, at::kFloat).to(options);
  table_ = at::tensor(table, at::kFloat).to(options.dtype(at::kFloat));
}

Engine::Batch Engine::plan(const std::vector<ImageView>& images) const {
  const auto& pre = detector_->preprocessing();
  Batch b;
  b.n = static_cast<int64_t>(images.size());
  int64_t max_h = 0, max_w = 0;
  for (const auto& im : images) {
    if (!im.bgr || im.height <= 0 || im.width <= 0) {
      throw EngineError(ErrorKind::BadInput, "an image has no pixels (height " +
                                                 std::to_string(im.height) + ", width " +
                                                 std::to_string(im.width) + ")");
    }
    // _resize_image_and_masks in eager mode: a Python float scale, then
    // int(size * scale) per side (F.interpolate with recompute_scale_factor=True).
    const double min_side = static_cast<double>(std::min(im.height, im.width));
    const double max_side = static_cast<double>(std::max(im.height, im.width));
    const double scale = std::min(static_cast<double>(pre.min_size) / min_side,
                                  static_cast<double>(pre.max_size) / max_side);
    const int64_t h = static_cast<int64_t>(std::floor(static_cast<double>(im.height) * scale));
    const int64_t w = static_cast<int64_t>(std::floor(static_cast<double>(im.width) * scale));
    b.resized_h.push_back(h);
    b.resized_w.push_back(w);
    max_h = std::max(max_h, h);
    max_w = std::max(max_w, w);
    // resize_boxes: torch.tensor(original, float32) / torch.tensor(resized, float32).
    b.info.insert(b.info.end(), {static_cast<float>(h), static_cast<float>(w),
                                 static_cast<float>(im.height) / static_cast<float>(h),
                                 static_cast<float>(im.width) / static_cast<float>(w)});
  }
  // batch_images: pad to a multiple of size_divisible.
  const double stride = static_cast<double>(pre.size_divisible);
  b.height = static_cast<int64_t>(std::ceil(static_cast<double>(max_h) / stride) * stride);
  b.width = static_cast<int64_t>(std::ceil(static_cast<double>(max_w) / stride) * stride);
  if (detector_->arch() != Arch::RetinaNet) {
    // MultiScaleRoIAlign.setup_scales from the largest resized height of the batch.
    b.pooler.scales = infer_scales(detector_->pooler_heights(b.height), max_h);
    b.pooler.k_min = static_cast<int64_t>(-std::log2(static_cast<float>(b.pooler.scales.front())));
    b.pooler.k_max = static_cast<int64_t>(-std::log2(static_cast<float>(b.pooler.scales.back())));
  }
  return b;
}

void Engine::preprocess(const std::vector<ImageView>& images, const Batch& batch, at::Tensor& out,
                        at::Tensor& info) {
  const bool cuda = is_cuda(s_);
  if (!cuda) out.zero_();
  for (size_t i = 0; i < images.size(); i++) {
    const auto& im = images[i];
    const int64_t bytes = im.height * im.width * 3;
    at::Tensor pixels;
    if (cuda) {
      auto& staging = cuda_->staging[i];
      pinned_bytes(staging, bytes);
      std::memcpy(staging.data_ptr(), im.bgr, static_cast<size_t>(bytes));
      pixels = staging.narrow(0, 0, bytes).to(out.device(), /*non_blocking=*/true);
      // One kernel: pixel / 255, normalise, resize, pad (kernels.cuh, dn_preprocess_value).
      const auto& pre = detector_->preprocessing();
      preprocess_into(pixels, im.height, im.width, batch.resized_h[i], batch.resized_w[i], table_,
                      pre.mean, pre.std, out[static_cast<int64_t>(i)]);
      timing_.other_launches += 2;
      continue;
    } else {
      pixels = at::from_blob(const_cast<uint8_t*>(im.bgr), {bytes}, at::kByte);
    }
    // BGR HWC bytes -> RGB CHW pixel / 255 -> (x - mean) / std -> bilinear resize.
    auto rgb = lut_.index({pixels.to(at::kLong)}).view({im.height, im.width, 3})
                   .permute({2, 0, 1}).flip({0}).contiguous();
    auto normalised = (rgb - mean_) / std_;
    auto resized = at::upsample_bilinear2d(normalised.unsqueeze(0),
                                           {batch.resized_h[i], batch.resized_w[i]}, false);
    out[static_cast<int64_t>(i)]
        .narrow(1, 0, batch.resized_h[i])
        .narrow(2, 0, batch.resized_w[i])
        .copy_(resized[0]);

  }
  auto host_info = at::from_blob(const_cast<float*>(batch.info.data()), {batch.n, 4}, at::kFloat);
  if (cuda) {
    pinned_bytes(cuda_->info_host, batch.n * 4 * 4);
    auto staged = cuda_->info_host.narrow(0, 0, batch.n * 16).view(at::kFloat).view({batch.n, 4});
    staged.copy_(host_info);
    info.copy_(staged, /*non_blocking=*/true);
    timing_.other_launches += 1;
  } else {
    info.copy_(host_info);
  }
}

void Engine::read_results(const std::vector<ImageView>& images, const at::Tensor& packed,
                          const std::vector<at::Tensor>& masks) {
  const int64_t d = detector_->max_detections();
  results_.assign(images.size(), ImageResult{});
  const float* base = packed.data_ptr<float>();
  for (size_t i = 0; i < images.size(); i++) {
    const float* row = base + static_cast<int64_t>(i) * (d * 6 + 2);
    auto& r = results_[i];
    r.count = static_cast<int64_t>(row[d * 6]);
    r.inexact = row[d * 6 + 1] != 0.0f;
    for (int64_t k = 0; k < r.count; k++) {
      const float* det = row + k * 6;
      r.boxes.insert(r.boxes.end(), det, det + 4);
      r.scores.push_back(det[4]);
      r.labels.push_back(static_cast<int64_t>(det[5]));
    }
    if (!masks.empty()) {
      const int64_t words = (images[i].height + 31) / 32;
      const int64_t per = images[i].width * words;
      const auto* bits = static_cast<const uint32_t*>(masks[i].data_ptr());
      r.mask_words = words;
      r.mask_bits.assign(bits, bits + r.count * per);
    }
  }
}

std::vector<ImageResult>& Engine::detect(const std::vector<ImageView>& images) {
  c10::InferenceMode guard;
  timing_ = CallTiming{};
  if (images.empty()) {
    results_.clear();
    return results_;
  }
  Batch batch = plan(images);
  if (is_cuda(s_)) return detect_cuda(images, batch);
  auto options = at::TensorOptions().dtype(act_dtype(s_));
  auto input = at::zeros({batch.n, 3, batch.height, batch.width}, options);
  if (s_.channels_last) input = input.contiguous(at::MemoryFormat::ChannelsLast);
  auto info = at::zeros({batch.n, 4}, at::kFloat);
  preprocess(images, batch, input, info);
  auto consts = detector_->prepare(input, batch.pooler);
  auto out = detector_->forward(input, info, consts);
  std::vector<at::Tensor> masks;
  if (detector_->masks()) {
    for (size_t i = 0; i < images.size(); i++) {
      const auto idx = static_cast<int64_t>(i);
      masks.push_back(paste_masks(out.mask_probs[idx], out.paste_boxes[idx],
                                  out.count.narrow(0, idx, 1), images[i].height, images[i].width, 0.5));
    }
  }
  read_results(images, out.packed.contiguous(), masks);
  return results_;
}

Dumps Engine::stages(const std::vector<ImageView>& images) {
  c10::InferenceMode guard;
  Batch batch = plan(images);
  auto options = at::TensorOptions().dtype(act_dtype(s_)).device(
      is_cuda(s_) ? at::Device(at::kCUDA, s_.device) : at::Device(at::kCPU));
  auto input = at::zeros({batch.n, 3, batch.height, batch.width}, options);
  if (s_.channels_last) input = input.contiguous(at::MemoryFormat::ChannelsLast);
  auto info = at::zeros({batch.n, 4}, options.dtype(at::kFloat));
  if (is_cuda(s_) && cuda_->staging.size() < images.size()) cuda_->staging.resize(images.size());
  preprocess(images, batch, input, info);
  auto consts = detector_->prepare(input, batch.pooler);
  Dumps dumps;
  auto out = detector_->forward(input, info, consts, &dumps);
  dumps["packed"] = out.packed;
  for (auto& [name, t] : dumps) t = t.to(at::kCPU).contiguous();
  return dumps;
}

std::string Engine::describe() const {
  std::ostringstream o;
  o << "{\"architecture\":\"" << arch_name(detector_->arch()) << "\",\"model_class\":\""
    << file_->type_name() << "\",\"dtype\":\"" << (s_.half ? "fp16" : "fp32")
    << "\",\"device\":\"" << (is_cuda(s_) ? "cuda:" + std::to_string(s_.device) : "cpu")
    << "\",\"cuda_graphs\":" << (s_.graphs && is_cuda(s_) ? "true" : "false")
    << ",\"fused_conv\":" << (s_.fused_conv && is_cuda(s_) ? "true" : "false")
    << ",\"channels_last\":" << (s_.channels_last ? "true" : "false")
    << ",\"cudnn_benchmark\":" << (s_.cudnn_benchmark ? "true" : "false")
    << ",\"allow_tf32_cudnn\":" << (s_.allow_tf32 ? "true" : "false")
    << ",\"nms_capacity\":" << s_.nms_capacity << ",\"exact\":" << (s_.exact ? "true" : "false")
    << ",\"buckets\":[";
  bool first = true;
  for (const auto& [key, b] : buckets_) {
    o << (first ? "" : ",") << "{\"batch\":" << std::get<0>(key) << ",\"height\":" << std::get<1>(key)
      << ",\"width\":" << std::get<2>(key) << ",\"graphed\":" << (b->graphed ? "true" : "false")
      << ",\"graph_kernels\":" << b->graph_kernels << ",\"replays\":" << b->replays;
    if (!b->graph_error.empty()) {
      std::string e = b->graph_error;
      for (auto& ch : e) {
        if (ch == '"' || ch == '\\' || ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
      }
      o << ",\"graph_error\":\"" << e.substr(0, 400) << "\"";
    }
    o << "}";
    first = false;
  }
  o << "]" << describe_cuda() << "}";
  return o.str();
}

}  // namespace dn
