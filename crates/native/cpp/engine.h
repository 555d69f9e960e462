// detbench native engine: the engine a caller holds. It turns decoded images into detections:
// GeneralizedRCNNTransform's preprocessing on the device (exact torchvision arithmetic), the
// detector's forward pass as one CUDA graph per batch shape ("bucket": batch size, padded size,
// pooler scales), Mask R-CNN's mask pasting, and one host synchronisation per call. On the CPU
// the same code runs without graphs.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "detector.h"

namespace dn {

struct ImageView {
  const uint8_t* bgr;  // height x width x 3, BGR (OpenCV's order), row-major
  int64_t height, width;
};

struct ImageResult {
  int64_t count = 0;
  std::vector<float> boxes;        // [count, 4] x1, y1, x2, y2 in original pixels
  std::vector<float> scores;       // [count]
  std::vector<int64_t> labels;     // [count] torchvision label = COCO category id
  bool inexact = false;            // the NMS capacity was too small for this image (boxes.h)
  std::vector<uint32_t> mask_bits; // Mask R-CNN: [count, width, mask_words], column-major bits
  int64_t mask_words = 0;
};

struct CallTiming {
  double gpu_ms = 0;         // CUDA events: first upload to last download
  double forward_ms = 0;     // CUDA events around the graph replay (or the un-graphed forward)
  int64_t graph_kernels = 0; // kernel nodes in the replayed graph (0 without a graph)
  int64_t other_launches = 0;// kernels and copies launched outside the graph in this call
  bool graphed = false;
  bool new_bucket = false;   // this call built (and captured) its bucket
};

class Engine {
 public:
  Engine(const std::string& path, const Settings& s);
  ~Engine();
  std::vector<ImageResult>& detect(const std::vector<ImageView>& images);
  const CallTiming& last_timing() const { return timing_; }
  std::string describe() const;  // JSON
  // Median milliseconds of `iters` graph replays of the backbone + FPN alone on an N x H x W
  // input, and its FLOPs (2 per multiply-add of every convolution).
  std::pair<double, double> profile_backbone(int64_t n, int64_t h, int64_t w, int iters);
  // Intermediate tensors of one un-graphed forward pass (for the per-stage parity script).
  Dumps stages(const std::vector<ImageView>& images);

 private:
  struct Bucket;
  struct Batch;
  Batch plan(const std::vector<ImageView>& images) const;
  void preprocess(const std::vector<ImageView>& images, const Batch& batch, at::Tensor& out,
                  at::Tensor& info);
  Bucket& bucket(const Batch& batch);
  void capture(Bucket& b);
  void read_results(const std::vector<ImageView>& images, const at::Tensor& packed_host,
                    const std::vector<at::Tensor>& masks_host);
  std::vector<ImageResult>& detect_cuda(const std::vector<ImageView>& images, const Batch& batch);
  std::string describe_cuda() const;

  Settings s_;
  std::string path_;
  std::unique_ptr<ModelFile> file_;
  std::unique_ptr<Detector> detector_;
  at::Tensor mean_, std_, lut_, table_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<Bucket>> buckets_;
  struct CudaState;
  static std::unique_ptr<CudaState> make_cuda_state(const Settings& s);
  std::unique_ptr<CudaState> cuda_;
  std::vector<ImageResult> results_;
  CallTiming timing_;
};

}  // namespace dn
