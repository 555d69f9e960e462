// detbench native engine: the custom operations on the CPU (see ops.h), and the dispatch to
// the CUDA versions. The CPU loops call the per-element functions of kernels/kernels.cuh, so the
// arithmetic is the GPU's.
#include "ops.h"

#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <cmath>

#include "kernels/kernels.cuh"

namespace dn {

namespace {

std::pair<at::Tensor, at::Tensor> nms_sorted_cpu(const at::Tensor& boxes_in,
                                                 const at::Tensor& classes_in,
                                                 const at::Tensor& counts_in, double threshold,
                                                 bool half_boxes, int64_t max_keep,
                                                 bool compare_double) {
  auto boxes = boxes_in.to(at::kFloat).contiguous();
  auto classes = classes_in.to(at::kLong).contiguous();
  auto counts = counts_in.to(at::kLong).contiguous();
  const int64_t n = boxes.size(0), capacity = boxes.size(1);
  const int64_t words = (capacity + 63) / 64;
  auto keep = at::full({n, max_keep}, -1, at::kLong);
  auto keep_count = at::zeros({n}, at::kLong);
  const float threshold_f = static_cast<float>(threshold);
  for (int64_t b = 0; b < n; b++) {
    const float* bx = boxes.data_ptr<float>() + b * capacity * 4;
    const int64_t* cls = classes.data_ptr<int64_t>() + b * capacity;
    const int count = static_cast<int>(std::min(counts.data_ptr<int64_t>()[b], capacity));
    std::vector<dn_u64> mask(static_cast<size_t>(count) * words, 0);
    at::parallel_for(0, count, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        for (int64_t w = i / 64; w * 64 < count; w++) {
          mask[i * words + w] =
              dn_nms_word(bx, cls, static_cast<int>(i), static_cast<int>(w), count, threshold_f,
                          threshold, half_boxes, compare_double);
        }
      }
    });
    std::vector<dn_u64> removed(words, 0);
    int64_t kept = 0;
    int64_t* out = keep.data_ptr<int64_t>() + b * max_keep;
    for (int i = 0; i < count && kept < max_keep; i++) {
      if ((removed[i / 64] >> (i % 64)) & 1ULL) continue;
      out[kept++] = i;
      for (int64_t w = i / 64; w < words; w++) removed[w] |= mask[i * words + w];
    }
    keep_count.data_ptr<int64_t>()[b] = kept;
  }
  return {keep, keep_count};
}

at::Tensor roi_align_cpu(const std::vector<at::Tensor>& features_in,
                         const std::vector<double>& scales, const at::Tensor& rois_in,
                         const at::Tensor& level_in, int64_t pooled, int64_t sampling_ratio,
                         bool aligned) {
  TORCH_CHECK(features_in.size() <= 5, "at most five pyramid levels");
  std::vector<at::Tensor> features;
  DnLevels lv{};
  lv.count = static_cast<int>(features_in.size());
  for (size_t i = 0; i < features_in.size(); i++) {
    features.push_back(features_in[i].to(at::kFloat));
    const auto& f = features.back();
    lv.data[i] = f.data_ptr<float>();
    lv.stride_n[i] = f.stride(0);
    lv.stride_c[i] = f.stride(1);
    lv.stride_h[i] = f.stride(2);
    lv.stride_w[i] = f.stride(3);
    lv.height[i] = static_cast<int>(f.size(2));
    lv.width[i] = static_cast<int>(f.size(3));
    lv.scale[i] = static_cast<float>(scales[i]);
  }
  auto rois = rois_in.to(at::kFloat).contiguous();
  auto level = level_in.to(at::kLong).contiguous();
  const int64_t r = rois.size(0), c = features[0].size(1);
  auto out = at::empty({r, pooled, pooled, c}, at::kFloat);
  float* o = out.data_ptr<float>();
  const float* rp = rois.data_ptr<float>();
  const int64_t* lp = level.data_ptr<int64_t>();
  const int p = static_cast<int>(pooled);
  at::parallel_for(0, r * pooled * pooled, 1, [&](int64_t begin, int64_t end) {
    for (int64_t cell = begin; cell < end; cell++) {
      const int pw = static_cast<int>(cell % pooled), ph = static_cast<int>((cell / pooled) % pooled);
      const int64_t roi = cell / pooled / pooled;
      for (int64_t ch = 0; ch < c; ch++) {
        o[cell * c + ch] = dn_roi_align_value<DnF32>(lv, static_cast<int>(lp[roi]), rp + 5 * roi,
                                                     static_cast<int>(ch), ph, pw, p, p,
                                                     static_cast<int>(sampling_ratio), aligned);
      }
    }
  });
  return out.to(features_in[0].scalar_type());
}

at::Tensor paste_masks_cpu(const at::Tensor& masks_in, const at::Tensor& boxes_in,
                           const at::Tensor& count_in, int64_t image_h, int64_t image_w,
                           double threshold) {
  auto masks = masks_in.to(at::kFloat).contiguous();
  auto boxes = boxes_in.to(at::kLong).contiguous();
  const int64_t d = masks.size(0), m = masks.size(1);
  const int64_t words = (image_h + 31) / 32;
  auto bits = at::zeros({d, image_w, words}, at::kInt);
  const int64_t count = std::min<int64_t>(count_in.to(at::kLong).item<int64_t>(), d);
  auto* out = reinterpret_cast<uint32_t*>(bits.data_ptr<int32_t>());
  const float* mp = masks.data_ptr<float>();
  const int64_t* bp = boxes.data_ptr<int64_t>();
  at::parallel_for(0, count * image_w, 16, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; index++) {
      const int64_t det = index / image_w, x = index % image_w;
      for (int64_t w = 0; w < words; w++) {
        uint32_t word = 0;
        for (int k = 0; k < 32; k++) {
          const int64_t y = w * 32 + k;
          if (y < image_h &&
              dn_paste_bit<DnF32>(mp + det * m * m, static_cast<int>(m), bp + 4 * det,
                                  static_cast<int>(x), static_cast<int>(y),
                                  static_cast<int>(image_h), static_cast<int>(image_w),
                                  static_cast<float>(threshold))) {
            word |= 1u << k;
          }
        }
        out[(det * image_w + x) * words + w] = word;
      }
    }
  });
  return bits;
}

}  // namespace

void preprocess_into(const at::Tensor& bgr, int64_t height, int64_t width, int64_t out_h,
                     int64_t out_w, const at::Tensor& table, const std::vector<double>& mean,
                     const std::vector<double>& std, at::Tensor out) {
  const bool half = out.scalar_type() == at::kHalf;
  DnPre p{};
  p.in_h = static_cast<int>(height);
  p.in_w = static_cast<int>(width);
  p.out_h = static_cast<int>(out_h);
  p.out_w = static_cast<int>(out_w);
  for (int c = 0; c < 3; c++) {
    // torch.as_tensor(mean, dtype=image.dtype): the values rounded to the model's dtype.
    p.mean[c] = half ? dn_round_half(static_cast<float>(mean[c])) : static_cast<float>(mean[c]);
    p.std[c] = half ? dn_round_half(static_cast<float>(std[c])) : static_cast<float>(std[c]);
  }
  if (out.is_cuda()) {
    cuda::preprocess_into(bgr, table, &p, out);
    return;
  }
  TORCH_CHECK(!half, "fp16 runs on CUDA only");
  auto src = bgr.contiguous();
  auto tab = table.to(at::kFloat).contiguous();
  const uint8_t* b = src.data_ptr<uint8_t>();
  const float* t = tab.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t h = out.size(1), w = out.size(2);
  const int64_t sc = out.stride(0), sh = out.stride(1), sw = out.stride(2);
  at::parallel_for(0, h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; y++) {
      for (int64_t x = 0; x < w; x++) {
        for (int c = 0; c < 3; c++) {
          o[c * sc + y * sh + x * sw] =
              dn_preprocess_value<DnF32>(b, t, p, c, static_cast<int>(y), static_cast<int>(x));
        }
      }
    }
  });
}

std::pair<at::Tensor, at::Tensor> nms_sorted(const at::Tensor& boxes, const at::Tensor& classes,
                                             const at::Tensor& counts, double threshold,
                                             bool half_boxes, int64_t max_keep,
                                             bool compare_double) {
  if (boxes.is_cuda()) {
    return cuda::nms_sorted(boxes, classes, counts, threshold, half_boxes, max_keep);
  }
  return nms_sorted_cpu(boxes, classes, counts, threshold, half_boxes, max_keep, compare_double);
}

at::Tensor roi_align_levels(const std::vector<at::Tensor>& features,
                            const std::vector<double>& scales, const at::Tensor& rois,
                            const at::Tensor& level, int64_t pooled, int64_t sampling_ratio,
                            bool aligned) {
  if (rois.is_cuda()) {
    return cuda::roi_align_levels(features, scales, rois, level, pooled, sampling_ratio, aligned);
  }
  return roi_align_cpu(features, scales, rois, level, pooled, sampling_ratio, aligned);
}

at::Tensor paste_masks(const at::Tensor& masks, const at::Tensor& boxes, const at::Tensor& count,
                       int64_t image_h, int64_t image_w, double threshold) {
  if (masks.is_cuda()) {
    return cuda::paste_masks(masks, boxes, count, image_h, image_w, threshold);
  }
  return paste_masks_cpu(masks, boxes, count, image_h, image_w, threshold);
}

}  // namespace dn
