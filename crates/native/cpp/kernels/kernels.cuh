// detbench native engine: the custom kernels, in one source that compiles two ways.
//
// * On the GPU, NVRTC compiles this file at run time (cpp/nvrtc.cpp embeds it as a string);
//   `__CUDACC_RTC__` is defined and the `extern "C" __global__` entry points at the bottom exist.
// * On the CPU, cpp/ops_cpu.cpp includes it as ordinary C++ and loops over the same per-element
//   functions (`dn_*`), so the CPU path and the tests run the very arithmetic the GPU runs.
//
// Semantics follow torchvision 0.26's CUDA kernels and PyTorch 2.11's CUDA interpolation, cited
// per function. No header is included on the GPU side (NVRTC needs none): half precision values
// are converted with the PTX `cvt` instructions.

#ifdef __CUDACC_RTC__
#define DN_FN __device__ __forceinline__
#else
#define DN_FN inline
#endif

typedef unsigned long long dn_u64;
#ifdef __CUDACC_RTC__
typedef long long dn_i64;
#else
typedef int64_t dn_i64;  // the host's int64_t (long), as ATen's int64 tensors hold
#endif

// ---------------------------------------------------------------------------------------------
// Half precision helpers.

#ifdef __CUDACC_RTC__
DN_FN float dn_half_to_float(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
DN_FN unsigned short dn_float_to_half(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
DN_FN float dn_round_half(float v) { return dn_half_to_float(dn_float_to_half(v)); }
DN_FN float dn_fmax(float a, float b) { return fmaxf(a, b); }
DN_FN float dn_fmin(float a, float b) { return fminf(a, b); }
#else
// Host: c10::Half rounds to nearest even, as the PTX conversion does.
DN_FN float dn_half_to_float(unsigned short h) {
  return static_cast<float>(c10::Half(h, c10::Half::from_bits()));
}
DN_FN unsigned short dn_float_to_half(float f) { return c10::Half(f).x; }
DN_FN float dn_round_half(float v) { return static_cast<float>(c10::Half(v)); }
DN_FN float dn_fmax(float a, float b) { return std::fmax(a, b); }
DN_FN float dn_fmin(float a, float b) { return std::fmin(a, b); }
#endif

// Element access for fp32 and fp16 tensors (fp16 as raw 16-bit storage).
struct DnF32 {
  typedef float storage;
  static DN_FN float load(const float* p, dn_i64 i) { return p[i]; }
  static DN_FN void store(float* p, dn_i64 i, float v) { p[i] = v; }
  static DN_FN float round(float v) { return v; }
};
struct DnF16 {
  typedef unsigned short storage;
  static DN_FN float load(const unsigned short* p, dn_i64 i) { return dn_half_to_float(p[i]); }
  static DN_FN void store(unsigned short* p, dn_i64 i, float v) { p[i] = dn_float_to_half(v); }
  static DN_FN float round(float v) { return dn_round_half(v); }
};

// ---------------------------------------------------------------------------------------------
// Non-maximum suppression, in two steps as torchvision's CUDA `nms` (nms_kernel.cu): a bitmask of
// "box j is suppressed by box i" for j after i in score order, 64 boxes per word, then a
// sequential pass that keeps a box unless a kept box suppressed it. Unlike torchvision, the pass
// runs on the device and stops after `max_keep` boxes, and suppression is limited to boxes of the
// same class (torchvision reaches the same by offsetting each class's boxes, `batched_nms`).

// IoU(a, b) > threshold, as torchvision's `devIoU<T>`: for fp16 boxes (`half_boxes`) the
// differences of coordinates are rounded to half as `T` arithmetic does, areas and the ratio are
// computed in float (`acc_type`). `compare_double`: the CPU kernel (nms_kernel.cpp) compares the
// float ratio with the double threshold.
DN_FN bool dn_iou_above(const float* a, const float* b, float threshold, double threshold_d,
                        bool half_boxes, bool compare_double) {
  float left = dn_fmax(a[0], b[0]), right = dn_fmin(a[2], b[2]);
  float top = dn_fmax(a[1], b[1]), bottom = dn_fmin(a[3], b[3]);
  float width = right - left, height = bottom - top;
  float ha = a[3] - a[1], hb = b[3] - b[1];
  if (half_boxes) {
    width = dn_round_half(width);
    height = dn_round_half(height);
    ha = dn_round_half(ha);
    hb = dn_round_half(hb);
  }
  width = dn_fmax(width, 0.0f);
  height = dn_fmax(height, 0.0f);
  float inter = width * height;
  float area_a = (a[2] - a[0]) * ha;
  float area_b = (b[2] - b[0]) * hb;
  float ratio = inter / (area_a + area_b - inter);
  return compare_double ? (double)ratio > threshold_d : ratio > threshold;
}

// One word of the suppression mask: bit k says box `i` suppresses box `64 * word + k`. Only words
// at or right of `i`'s own word are ever read; boxes at or past `count` are never suppressed.
DN_FN dn_u64 dn_nms_word(const float* boxes, const dn_i64* classes, int i, int word, int count,
                         float threshold, double threshold_d, bool half_boxes,
                         bool compare_double) {
  int start = word * 64;
  int end = count < start + 64 ? count : start + 64;
  int first = (word == i / 64) ? i + 1 : start;
  dn_u64 bits = 0;
  for (int j = first; j < end; j++) {
    if (classes[j] == classes[i] &&
        dn_iou_above(boxes + 4 * i, boxes + 4 * j, threshold, threshold_d, half_boxes,
                     compare_double)) {
      bits |= 1ULL << (j - start);
    }
  }
  return bits;
}

// ---------------------------------------------------------------------------------------------
// RoIAlign with torchvision's semantics (roi_align_kernel.cu, `roi_align_forward_kernel_impl`
// and `bilinear_interpolate`), for one output element, over a feature map addressed by strides
// (NCHW or NHWC). `L::round` after every operation reproduces the kernel's `T` arithmetic: for
// fp16 (T = c10::Half) each intermediate is rounded to half; for fp32 it is the identity.
template <class L>
DN_FN float dn_bilinear(const typename L::storage* plane, dn_i64 sh, dn_i64 sw, int height,
                        int width, float y, float x) {
  if (!(y >= -1.0f && y <= (float)height && x >= -1.0f && x <= (float)width)) return 0.0f;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int y_low = (int)y, x_low = (int)x, y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = (float)y_low;
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = (float)x_low;
  } else {
    x_high = x_low + 1;
  }
  float ly = L::round(y - y_low), lx = L::round(x - x_low);
  float hy = L::round(1.0f - ly), hx = L::round(1.0f - lx);
  float v1 = L::load(plane, y_low * sh + x_low * sw);
  float v2 = L::load(plane, y_low * sh + x_high * sw);
  float v3 = L::load(plane, y_high * sh + x_low * sw);
  float v4 = L::load(plane, y_high * sh + x_high * sw);
  float w1 = L::round(hy * hx), w2 = L::round(hy * lx), w3 = L::round(ly * hx), w4 = L::round(ly * lx);
  float sum = L::round(L::round(w1 * v1) + L::round(w2 * v2));
  sum = L::round(sum + L::round(w3 * v3));
  return L::round(sum + L::round(w4 * v4));
}

// The feature maps of up to five pyramid levels, with their strides, passed by value.
struct DnLevels {
  const void* data[5];
  dn_i64 stride_n[5], stride_c[5], stride_h[5], stride_w[5];
  int height[5], width[5];
  float scale[5];
  int count;
};

// Output element (roi r, bin ph/pw, channel c). `roi` is [batch index, x1, y1, x2, y2].
template <class L>
DN_FN float dn_roi_align_value(const DnLevels& lv, int level, const float* roi, int c, int ph,
                               int pw, int pooled_h, int pooled_w, int sampling_ratio,
                               bool aligned) {
  const typename L::storage* input = (const typename L::storage*)lv.data[level];
  int batch = (int)roi[0];
  float scale = lv.scale[level];
  float offset = aligned ? 0.5f : 0.0f;
  float roi_start_w = L::round(L::round(roi[1] * scale) - offset);
  float roi_start_h = L::round(L::round(roi[2] * scale) - offset);
  float roi_end_w = L::round(L::round(roi[3] * scale) - offset);
  float roi_end_h = L::round(L::round(roi[4] * scale) - offset);
  float roi_width = L::round(roi_end_w - roi_start_w);
  float roi_height = L::round(roi_end_h - roi_start_h);
  if (!aligned) {
    roi_width = dn_fmax(roi_width, 1.0f);
    roi_height = dn_fmax(roi_height, 1.0f);
  }
  float bin_h = L::round(roi_height / (float)pooled_h);
  float bin_w = L::round(roi_width / (float)pooled_w);
  const typename L::storage* plane =
      input + batch * lv.stride_n[level] + c * lv.stride_c[level];
  int grid_h = sampling_ratio > 0 ? sampling_ratio : (int)ceilf(roi_height / pooled_h);
  int grid_w = sampling_ratio > 0 ? sampling_ratio : (int)ceilf(roi_width / pooled_w);
  float count = (float)(grid_h * grid_w > 1 ? grid_h * grid_w : 1);
  float sum = 0.0f;
  for (int iy = 0; iy < grid_h; iy++) {
    // roi_start_h + ph * bin_size_h + T(iy + .5f) * bin_size_h / T(roi_bin_grid_h), left to right.
    float y = L::round(roi_start_h + L::round(ph * bin_h));
    y = L::round(y + L::round(L::round(L::round(iy + .5f) * bin_h) / (float)grid_h));
    for (int ix = 0; ix < grid_w; ix++) {
      float x = L::round(roi_start_w + L::round(pw * bin_w));
      x = L::round(x + L::round(L::round(L::round(ix + .5f) * bin_w) / (float)grid_w));
      sum = L::round(sum + dn_bilinear<L>(plane, lv.stride_h[level], lv.stride_w[level],
                                          lv.height[level], lv.width[level], y, x));
    }
  }
  return L::round(sum / count);
}

// ---------------------------------------------------------------------------------------------
// Mask pasting, as torchvision's `paste_masks_in_image` (roi_heads.py) run on the GPU: the
// 28x28 probability map padded by one zero pixel (`expand_masks`), resized to the integer box
// (`F.interpolate(size=(h, w), mode="bilinear", align_corners=False)`, whose CUDA kernel is
// PyTorch's `upsample_bilinear2d_out_frame`: scale = in / out, source index
// max(scale * (dst + 0.5) - 0.5, 0)), pasted at the box, then thresholded (`mask > threshold`,
// torchvision's references/detection/coco_eval.py). `box` is the expanded box as int64
// (x0, y0, x1, y1); the value is rounded to the mask's dtype before the comparison, as the
// interpolation writes it.
template <class L>
DN_FN bool dn_paste_bit(const typename L::storage* mask, int m, const dn_i64* box, int x, int y,
                        int image_h, int image_w, float threshold) {
  dn_i64 bx0 = box[0], by0 = box[1], bx1 = box[2], by1 = box[3];
  dn_i64 w = bx1 - bx0 + 1, h = by1 - by0 + 1;
  if (w < 1) w = 1;
  if (h < 1) h = 1;
  dn_i64 x_0 = bx0 > 0 ? bx0 : 0, y_0 = by0 > 0 ? by0 : 0;
  dn_i64 x_1 = bx1 + 1 < image_w ? bx1 + 1 : image_w;
  dn_i64 y_1 = by1 + 1 < image_h ? by1 + 1 : image_h;
  if (x < x_0 || x >= x_1 || y < y_0 || y >= y_1) return false;
  const int side = m + 2;  // padded size
  int oy = (int)(y - by0), ox = (int)(x - bx0);
  float value;
  if (h == side && w == side) {
    int py = oy, px = ox;
    value = (py >= 1 && py <= m && px >= 1 && px <= m) ? L::load(mask, (py - 1) * m + (px - 1))
                                                      : 0.0f;
  } else {
    float rh = (float)side / (float)h, rw = (float)side / (float)w;
    float h1r = rh * (oy + 0.5f) - 0.5f;
    if (h1r < 0) h1r = 0;
    int h1 = (int)h1r;
    int h1p = (h1 < side - 1) ? 1 : 0;
    float h1l = h1r - h1, h0l = 1.0f - h1l;
    float w1r = rw * (ox + 0.5f) - 0.5f;
    if (w1r < 0) w1r = 0;
    int w1 = (int)w1r;
    int w1p = (w1 < side - 1) ? 1 : 0;
    float w1l = w1r - w1, w0l = 1.0f - w1l;
    // The padded map: row/column 0 and side-1 are zero.
#define DN_PAD(py, px) \
  (((py) >= 1 && (py) <= m && (px) >= 1 && (px) <= m) ? L::load(mask, ((py)-1) * m + ((px)-1)) : 0.0f)
    value = h0l * (w0l * DN_PAD(h1, w1) + w1l * DN_PAD(h1, w1 + w1p)) +
            h1l * (w0l * DN_PAD(h1 + h1p, w1) + w1l * DN_PAD(h1 + h1p, w1 + w1p));
#undef DN_PAD
  }
  return L::round(value) > threshold;
}

// ---------------------------------------------------------------------------------------------
// Preprocessing, as GeneralizedRCNNTransform runs it in eager mode on one image: pixel / 255
// (`table`, float32 true division, as torchvision's references compute it on the host), cast to
// the model's dtype, (x - mean) / std (tensors of that dtype), F.interpolate(scale_factor,
// bilinear, align_corners=False, recompute_scale_factor=True) to (out_h, out_w) (PyTorch's CUDA
// `upsample_bilinear2d_out_frame`: scale = in / out, source index max(scale * (dst + 0.5) - 0.5, 0),
// the special case of equal sizes copying), and zero padding (batch_images). `bgr` is the
// decoded image, height x width x 3 bytes in OpenCV's BGR order; channel c of the output is RGB.
struct DnPre {
  int in_h, in_w, out_h, out_w;
  float mean[3], std[3];  // in the model's dtype (rounded to half for fp16)
};

template <class L>
DN_FN float dn_pre_source(const unsigned char* bgr, const float* table, const DnPre& p, int c,
                          int y, int x) {
  float v = L::round(table[bgr[(y * p.in_w + x) * 3 + (2 - c)]]);
  v = L::round(v - p.mean[c]);
  return L::round(v / p.std[c]);
}

// The value at output pixel (c, y, x) of the padded image.
template <class L>
DN_FN float dn_preprocess_value(const unsigned char* bgr, const float* table, const DnPre& p,
                                int c, int y, int x) {
  if (y >= p.out_h || x >= p.out_w) return 0.0f;
  if (p.in_h == p.out_h && p.in_w == p.out_w) return dn_pre_source<L>(bgr, table, p, c, y, x);
  const float rh = (float)p.in_h / (float)p.out_h, rw = (float)p.in_w / (float)p.out_w;
  float h1r = rh * ((float)y + 0.5f) - 0.5f;
  if (h1r < 0) h1r = 0;
  const int h1 = (int)h1r;
  const int h1p = (h1 < p.in_h - 1) ? 1 : 0;
  const float h1l = h1r - h1, h0l = 1.0f - h1l;
  float w1r = rw * ((float)x + 0.5f) - 0.5f;
  if (w1r < 0) w1r = 0;
  const int w1 = (int)w1r;
  const int w1p = (w1 < p.in_w - 1) ? 1 : 0;
  const float w1l = w1r - w1, w0l = 1.0f - w1l;
  return h0l * (w0l * dn_pre_source<L>(bgr, table, p, c, h1, w1) +
                w1l * dn_pre_source<L>(bgr, table, p, c, h1, w1 + w1p)) +
         h1l * (w0l * dn_pre_source<L>(bgr, table, p, c, h1 + h1p, w1) +
                w1l * dn_pre_source<L>(bgr, table, p, c, h1 + h1p, w1 + w1p));
}

// ---------------------------------------------------------------------------------------------
// GPU entry points.
#ifdef __CUDACC_RTC__

// Suppression mask for `batch` images of up to `capacity` boxes each: grid (words, words,
// batch), 64 threads; block (cx, ry) computes the words `cx` of rows 64*ry.. (as torchvision).
// boxes [batch, capacity, 4] float sorted by score, classes [batch, capacity], counts [batch].
extern "C" __global__ void dn_nms_mask(const float* boxes, const dn_i64* classes,
                                       const dn_i64* counts, int capacity, int words,
                                       float threshold, int half_boxes, dn_u64* mask) {
  int n = blockIdx.z;
  int row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;
  int count = (int)counts[n];
  if (count > capacity) count = capacity;
  if (row_block * 64 >= count || col_block * 64 >= count) return;
  const float* b = boxes + (dn_i64)n * capacity * 4;
  const dn_i64* cls = classes + (dn_i64)n * capacity;
  __shared__ float col_boxes[64 * 4];
  __shared__ dn_i64 col_classes[64];
  int col = col_block * 64 + threadIdx.x;
  if (col < count) {
    for (int k = 0; k < 4; k++) col_boxes[threadIdx.x * 4 + k] = b[col * 4 + k];
    col_classes[threadIdx.x] = cls[col];
  }
  __syncthreads();
  int i = row_block * 64 + threadIdx.x;
  if (i >= count) return;
  float own[4] = {b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]};
  dn_i64 own_class = cls[i];
  int end = count - col_block * 64 < 64 ? count - col_block * 64 : 64;
  int first = (row_block == col_block) ? threadIdx.x + 1 : 0;
  dn_u64 bits = 0;
  for (int k = first; k < end; k++) {
    if (col_classes[k] == own_class &&
        dn_iou_above(own, col_boxes + 4 * k, threshold, 0.0, half_boxes != 0, false)) {
      bits |= 1ULL << k;
    }
  }
  mask[((dn_i64)n * capacity + i) * words + col_block] = bits;
}

// The sequential pass, one warp per image: keep [batch, max_keep] positions in score order
// (-1 after the last), keep_count [batch].
extern "C" __global__ void dn_nms_reduce(const dn_u64* mask, const dn_i64* counts, int capacity,
                                         int words, int max_keep, dn_i64* keep,
                                         dn_i64* keep_count) {
  extern __shared__ dn_u64 removed[];
  int n = blockIdx.x, lane = threadIdx.x;
  int count = (int)counts[n];
  if (count > capacity) count = capacity;
  int used = (count + 63) / 64;
  for (int w = lane; w < used; w += 32) removed[w] = 0;
  __syncwarp();
  int kept = 0;
  const dn_u64* rows = mask + (dn_i64)n * capacity * words;
  for (int i = 0; i < count && kept < max_keep; i++) {
    int word = i >> 6;
    if (!((removed[word] >> (i & 63)) & 1ULL)) {
      if (lane == 0) keep[(dn_i64)n * max_keep + kept] = i;
      kept++;
      const dn_u64* row = rows + (dn_i64)i * words;
      for (int w = word + lane; w < used; w += 32) removed[w] |= row[w];
      __syncwarp();
    }
  }
  for (int k = kept + lane; k < max_keep; k += 32) keep[(dn_i64)n * max_keep + k] = -1;
  if (lane == 0) keep_count[n] = kept;
}

// Multi-level RoIAlign: out [rois, pooled_h, pooled_w, channels] (channels fastest, i.e. the
// channels-last layout of [rois, channels, pooled_h, pooled_w]); levels [rois] picks the map.
#define DN_ROI_ALIGN(NAME, L)                                                                 \
  extern "C" __global__ void NAME(DnLevels lv, const float* rois, const dn_i64* levels,       \
                                  int num_rois, int channels, int pooled_h, int pooled_w,     \
                                  int sampling_ratio, int aligned, L::storage* out) {         \
    dn_i64 total = (dn_i64)num_rois * pooled_h * pooled_w * channels;                         \
    for (dn_i64 index = blockIdx.x * (dn_i64)blockDim.x + threadIdx.x; index < total;         \
         index += (dn_i64)blockDim.x * gridDim.x) {                                           \
      int c = (int)(index % channels);                                                        \
      int pw = (int)((index / channels) % pooled_w);                                          \
      int ph = (int)((index / channels / pooled_w) % pooled_h);                               \
      int r = (int)(index / channels / pooled_w / pooled_h);                                  \
      float v = dn_roi_align_value<L>(lv, (int)levels[r], rois + 5 * r, c, ph, pw, pooled_h,  \
                                      pooled_w, sampling_ratio, aligned != 0);                \
      L::store(out, index, v);                                                                \
    }                                                                                         \
  }
DN_ROI_ALIGN(dn_roi_align_f32, DnF32)
DN_ROI_ALIGN(dn_roi_align_f16, DnF16)

// Mask pasting into bit planes: bits [masks, image_w, words] (uint32), column-major (bit k of
// word w of column x is pixel (x, 32*w + k)), the order COCO's run-length encoding reads.
// masks [masks, m, m] probabilities of the predicted class; boxes [masks, 4] int64.
#define DN_PASTE(NAME, L)                                                                     \
  extern "C" __global__ void NAME(const L::storage* masks, const dn_i64* boxes,               \
                                  const dn_i64* count, int m, int image_h, int image_w,       \
                                  int words, float threshold, unsigned int* bits) {           \
    int det = blockIdx.y;                                                                     \
    if (det >= (int)count[0]) return;                                                         \
    dn_i64 total = (dn_i64)image_w * words;                                                   \
    for (dn_i64 index = blockIdx.x * (dn_i64)blockDim.x + threadIdx.x; index < total;         \
         index += (dn_i64)blockDim.x * gridDim.x) {                                           \
      int x = (int)(index / words), w = (int)(index % words);                                 \
      unsigned int word = 0;                                                                  \
      for (int k = 0; k < 32; k++) {                                                          \
        int y = w * 32 + k;                                                                   \
        if (y < image_h && dn_paste_bit<L>(masks + (dn_i64)det * m * m, m, boxes + 4 * det,   \
                                           x, y, image_h, image_w, threshold))                \
          word |= 1u << k;                                                                    \
      }                                                                                       \
      bits[(dn_i64)det * total + index] = word;                                               \
    }                                                                                         \
  }
DN_PASTE(dn_paste_masks_f32, DnF32)
DN_PASTE(dn_paste_masks_f16, DnF16)

// Preprocessing into one image's slot of the padded batch: out points at [3, H, W] with strides
// (stride_c, stride_h, stride_w) (any layout); every element of the slot is written.
#define DN_PREPROCESS(NAME, L)                                                                \
  extern "C" __global__ void NAME(const unsigned char* bgr, const float* table, DnPre p,       \
                                  int height, int width, dn_i64 stride_c, dn_i64 stride_h,    \
                                  dn_i64 stride_w, L::storage* out) {                         \
    dn_i64 total = (dn_i64)3 * height * width;                                                \
    for (dn_i64 index = blockIdx.x * (dn_i64)blockDim.x + threadIdx.x; index < total;         \
         index += (dn_i64)blockDim.x * gridDim.x) {                                           \
      int c = (int)(index % 3);                                                               \
      int x = (int)((index / 3) % width);                                                     \
      int y = (int)(index / 3 / width);                                                       \
      L::store(out, c * stride_c + y * stride_h + x * stride_w,                               \
               dn_preprocess_value<L>(bgr, table, p, c, y, x));                               \
    }                                                                                         \
  }
DN_PREPROCESS(dn_preprocess_f32, DnF32)
DN_PREPROCESS(dn_preprocess_f16, DnF16)

#endif  // __CUDACC_RTC__
