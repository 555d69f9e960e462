// detbench native engine: the C interface (see api.h). No C++ exception leaves this file.
#include "api.h"

#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "boxes.h"
#include "engine.h"
#include "ops.h"

struct dn_engine {
  std::unique_ptr<dn::Engine> engine;
  std::string description;
};

namespace {

void write_error(char* buffer, size_t length, const std::string& message) {
  if (buffer == nullptr || length == 0) return;
  std::snprintf(buffer, length, "%s", message.c_str());
}

// Runs `work`, turning exceptions into an error code and message.
template <class F>
int guarded(char* error, size_t length, F&& work) {
  try {
    work();
    return 0;
  } catch (const dn::EngineError& e) {
    write_error(error, length, e.what());
    return static_cast<int>(e.kind);
  } catch (const c10::OutOfMemoryError& e) {
    write_error(error, length, std::string("out of memory: ") + e.what_without_backtrace());
    return static_cast<int>(dn::ErrorKind::OutOfMemory);
  } catch (const c10::Error& e) {
    write_error(error, length, e.what_without_backtrace());
    return static_cast<int>(dn::ErrorKind::Other);
  } catch (const std::exception& e) {
    write_error(error, length, e.what());
    return static_cast<int>(dn::ErrorKind::Other);
  } catch (...) {
    write_error(error, length, "unknown C++ exception");
    return static_cast<int>(dn::ErrorKind::Other);
  }
}

std::vector<dn::ImageView> views(const dn_image* images, int64_t count) {
  std::vector<dn::ImageView> out;
  for (int64_t i = 0; i < count; i++) out.push_back({images[i].bgr, images[i].height, images[i].width});
  return out;
}

// A tensor as a NumPy .npy file (version 1.0): float32, int64 or uint8 (bool), C order.
void write_npy(const std::string& path, at::Tensor t) {
  if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kDouble) t = t.to(at::kFloat);
  if (t.scalar_type() == at::kBool) t = t.to(at::kByte);
  t = t.contiguous();
  const char* descr = t.scalar_type() == at::kFloat ? "<f4" : t.scalar_type() == at::kLong ? "<i8" : "|u1";
  std::string shape = "(";
  for (auto s : t.sizes()) shape += std::to_string(s) + ",";
  shape += ")";
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) throw dn::EngineError(dn::ErrorKind::BadInput, "cannot write " + path);
  f.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char*>(&len), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
}

at::Tensor host_f32(const float* p, std::vector<int64_t> shape) {
  return at::from_blob(const_cast<float*>(p), shape, at::kFloat).clone();
}

}  // namespace

extern "C" {

int dn_engine_open(const char* path, const dn_settings* s, dn_engine** out, char* error,
                   size_t error_length) {
  return guarded(error, error_length, [&] {
    dn::Settings settings;
    settings.device = s->device;
    settings.half = s->half != 0;
    settings.graphs = s->graphs != 0;
    settings.fused_conv = s->fused_conv != 0;
    settings.channels_last = s->channels_last != 0;
    settings.cudnn_benchmark = s->cudnn_benchmark != 0;
    settings.allow_tf32 = s->allow_tf32 != 0;
    settings.nms_capacity = s->nms_capacity;
    settings.exact = s->exact != 0;
    auto handle = std::make_unique<dn_engine>();
    handle->engine = std::make_unique<dn::Engine>(path, settings);
    *out = handle.release();
  });
}

int dn_engine_detect(dn_engine* engine, const dn_image* images, int64_t count, dn_result* results,
                     char* error, size_t error_length) {
  return guarded(error, error_length, [&] {
    auto& r = engine->engine->detect(views(images, count));
    for (int64_t i = 0; i < count; i++) {
      const auto& one = r[static_cast<size_t>(i)];
      results[i] = dn_result{one.count,        one.boxes.data(),
                             one.scores.data(), one.labels.data(),
                             one.inexact ? 1 : 0,
                             one.mask_bits.empty() ? nullptr : one.mask_bits.data(),
                             one.mask_words};
    }
  });
}

void dn_engine_timing(const dn_engine* engine, dn_timing* out) {
  const auto& t = engine->engine->last_timing();
  *out = dn_timing{t.gpu_ms, t.forward_ms, t.graph_kernels, t.other_launches, t.graphed ? 1 : 0,
                   t.new_bucket ? 1 : 0};
}

const char* dn_engine_describe(dn_engine* engine) {
  try {
    engine->description = engine->engine->describe();
  } catch (const std::exception& e) {
    engine->description = std::string("{\"error\":\"describe failed\"}");
  }
  return engine->description.c_str();
}

int dn_engine_profile_backbone(dn_engine* engine, int64_t n, int64_t h, int64_t w, int32_t iters,
                               double* median_ms, double* flops, char* error, size_t error_length) {
  return guarded(error, error_length, [&] {
    auto [ms, f] = engine->engine->profile_backbone(n, h, w, iters);
    *median_ms = ms;
    *flops = f;
  });
}

int dn_engine_dump_stages(dn_engine* engine, const dn_image* images, int64_t count,
                          const char* folder, char* error, size_t error_length) {
  return guarded(error, error_length, [&] {
    auto dumps = engine->engine->stages(views(images, count));
    for (const auto& [name, t] : dumps) write_npy(std::string(folder) + "/" + name + ".npy", t);
  });
}

void dn_engine_free(dn_engine* engine) { delete engine; }

int dn_compile_kernels(const char* arch, const char** ptx, char* error, size_t error_length) {
  static thread_local std::string text;
  return guarded(error, error_length, [&] {
    text = dn::cuda::compile_ptx(arch);
    *ptx = text.c_str();
  });
}

int dn_op_batched_nms(const float* boxes, const float* scores, const int64_t* idxs, int64_t n,
                      double iou_threshold, int32_t half, int32_t cuda_semantics, int64_t* keep,
                      int64_t* keep_count, char* error, size_t error_length) {
  return guarded(error, error_length, [&] {
    c10::InferenceMode guard;
    auto b = host_f32(boxes, {1, n, 4});
    auto s = host_f32(scores, {1, n});
    if (half != 0) {
      b = b.to(at::kHalf);
      s = s.to(at::kHalf);
    }
    auto i = at::from_blob(const_cast<int64_t*>(idxs), {1, n}, at::kLong).clone();
    auto valid = at::ones({1, n}, at::kBool);
    // torchvision's CPU or CUDA choice of path and IoU comparison (boxes.h, ops.h).
    const bool cuda = cuda_semantics != 0;
    auto r = dn::batched_nms(b, s, i, valid, iou_threshold, n, n, cuda ? 100000 : 4000,
                             /*on_cpu=*/!cuda);
    *keep_count = r.count.item<int64_t>();
    auto index = r.index.contiguous();
    std::copy(index.data_ptr<int64_t>(), index.data_ptr<int64_t>() + *keep_count, keep);
  });
}

int dn_op_roi_align(const float* features, int64_t channels, int64_t height, int64_t width,
                    const float* rois, int64_t num_rois, double spatial_scale, int64_t pooled,
                    int64_t sampling_ratio, int32_t aligned, float* out, char* error,
                    size_t error_length) {
  return guarded(error, error_length, [&] {
    c10::InferenceMode guard;
    auto f = host_f32(features, {1, channels, height, width});
    auto r = host_f32(rois, {num_rois, 5});
    auto level = at::zeros({num_rois}, at::kLong);
    auto y = dn::roi_align_levels({f}, {spatial_scale}, r, level, pooled, sampling_ratio, aligned != 0);
    auto nchw = y.permute({0, 3, 1, 2}).contiguous();
    std::copy(nchw.data_ptr<float>(), nchw.data_ptr<float>() + nchw.numel(), out);
  });
}

int dn_op_multiscale_roi_align(const float* const* features, const int64_t* heights,
                               const int64_t* widths, int64_t levels, int64_t channels,
                               const float* boxes, int64_t num_boxes, int64_t image_h,
                               int64_t image_w, int64_t pooled, int64_t sampling_ratio, float* out,
                               char* error, size_t error_length) {
  return guarded(error, error_length, [&] {
    c10::InferenceMode guard;
    (void)image_w;
    std::vector<at::Tensor> maps;
    std::vector<int64_t> hs;
    for (int64_t l = 0; l < levels; l++) {
      maps.push_back(host_f32(features[l], {1, channels, heights[l], widths[l]}));
      hs.push_back(heights[l]);
    }
    auto scales = dn::infer_scales(hs, image_h);
    const auto k_min = static_cast<int64_t>(-std::log2(static_cast<float>(scales.front())));
    const auto k_max = static_cast<int64_t>(-std::log2(static_cast<float>(scales.back())));
    auto b = host_f32(boxes, {num_boxes, 4});
    auto level = dn::map_levels(b, k_min, k_max);
    auto rois = at::cat({at::zeros({num_boxes, 1}, at::kFloat), b}, 1);
    auto y = dn::roi_align_levels(maps, scales, rois, level, pooled, sampling_ratio, false);
    auto nchw = y.permute({0, 3, 1, 2}).contiguous();
    std::copy(nchw.data_ptr<float>(), nchw.data_ptr<float>() + nchw.numel(), out);
  });
}

int dn_op_decode_boxes(const float* codes, const float* boxes, int64_t m, const double* weights,
                       double clip, float* out, char* error, size_t error_length) {
  return guarded(error, error_length, [&] {
    c10::InferenceMode guard;
    dn::BoxCoder coder{weights[0], weights[1], weights[2], weights[3], clip};
    auto c = host_f32(codes, {m, 4});
    auto b = host_f32(boxes, {m, 4});
    auto y = dn::decode_boxes(coder, c, b, at::scalar_tensor(0.5, at::kFloat)).contiguous();
    std::copy(y.data_ptr<float>(), y.data_ptr<float>() + y.numel(), out);
  });
}

int dn_op_map_levels(const float* boxes, int64_t m, int32_t half, int64_t k_min, int64_t k_max,
                     int64_t* out, char* error, size_t error_length) {
  return guarded(error, error_length, [&] {
    c10::InferenceMode guard;
    auto b = host_f32(boxes, {m, 4});
    if (half) b = b.to(at::kHalf);
    auto level = dn::map_levels(b, k_min, k_max).contiguous();
    std::copy(level.data_ptr<int64_t>(), level.data_ptr<int64_t>() + level.numel(), out);
  });
}

int dn_op_preprocess(const uint8_t* bgr, int64_t height, int64_t width, int64_t out_h,
                     int64_t out_w, int64_t pad_h, int64_t pad_w, const double* mean,
                     const double* std, float* out, char* error, size_t error_length) {
  return guarded(error, error_length, [&] {
    c10::InferenceMode guard;
    std::vector<float> values(256);
    for (int v = 0; v < 256; v++) values[v] = static_cast<float>(v) / 255.0f;
    auto table = at::tensor(values, at::kFloat);
    auto pixels = at::from_blob(const_cast<uint8_t*>(bgr), {height * width * 3}, at::kByte);
    auto result = at::empty({3, pad_h, pad_w}, at::kFloat);
    dn::preprocess_into(pixels, height, width, out_h, out_w, table, {mean[0], mean[1], mean[2]},
                        {std[0], std[1], std[2]}, result);
    std::copy(result.data_ptr<float>(), result.data_ptr<float>() + result.numel(), out);
  });
}

int dn_op_paste_masks(const float* masks, int64_t count, int64_t m, const float* boxes,
                      int64_t image_h, int64_t image_w, uint32_t* bits, char* error,
                      size_t error_length) {
  return guarded(error, error_length, [&] {
    c10::InferenceMode guard;
    auto mk = host_f32(masks, {count, m, m});
    auto b = dn::expand_boxes_int(host_f32(boxes, {count, 4}), static_cast<double>(m + 2) / m);
    auto n = at::full({1}, count, at::kLong);
    auto y = dn::paste_masks(mk, b, n, image_h, image_w, 0.5).contiguous();
    const auto* p = reinterpret_cast<const uint32_t*>(y.data_ptr<int32_t>());
    std::copy(p, p + y.numel(), bits);
  });
}

}  // extern "C"
