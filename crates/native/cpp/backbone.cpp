// detbench native engine: ResNet-50 + FPN (see backbone.h) and the convolution runner.
#include "backbone.h"

namespace dn {

namespace {
thread_local double g_conv_flops = 0.0;
}

void reset_conv_flops() { g_conv_flops = 0.0; }
double conv_flops() { return g_conv_flops; }

at::Tensor run_conv(const Conv& c, const at::Tensor& x, Act act, const Settings& s,
                    const at::Tensor* residual) {
  const std::vector<int64_t> stride{c.stride, c.stride}, padding{c.padding, c.padding},
      dilation{c.dilation, c.dilation};
  at::Tensor y;
  if (is_cuda(s) && s.fused_conv && act == Act::Relu) {
    // cuDNN's fused convolution + bias (+ residual) + ReLU, as PyTorch's frozen-graph
    // optimisation (`_jit_pass_fuse_frozen_conv_add_relu`) uses it.
    y = residual ? at::cudnn_convolution_add_relu(x, c.weight, *residual, at::Scalar(1.0),
                                                  c.bias, stride, padding, dilation, c.groups)
                 : at::cudnn_convolution_relu(x, c.weight, c.bias, stride, padding, dilation,
                                              c.groups);
  } else {
    y = at::conv2d(x, c.weight, c.bias, stride, padding, dilation, c.groups);
    if (c.bn_scale.defined()) y = y * c.bn_scale + c.bn_shift;
    if (residual) y.add_(*residual);
    if (act == Act::Relu) y.relu_();
  }
  const auto k = c.weight.sizes();
  g_conv_flops += 2.0 * static_cast<double>(y.numel()) * static_cast<double>(k[1] * k[2] * k[3]);
  return y;
}

ResNetFpn::ResNetFpn(const ModelFile& f, const Settings& s, std::vector<int> returned,
                     Extra extra)
    : s_(s), returned_(std::move(returned)), extra_(extra) {
  const std::string body = "backbone.body.";
  stem_ = load_conv_bn(f, body + "conv1", body + "bn1", 2, 3, s);
  const int blocks[4] = {3, 4, 6, 3};
  for (int stage = 0; stage < 4; stage++) {
    std::vector<Bottleneck> list;
    for (int i = 0; i < blocks[stage]; i++) {
      const std::string p = body + "layer" + std::to_string(stage + 1) + "." + std::to_string(i);
      // torchvision's Bottleneck strides the 3x3 convolution (ResNet v1.5).
      const int64_t stride = (i == 0 && stage > 0) ? 2 : 1;
      Bottleneck b;
      b.conv1 = load_conv_bn(f, p + ".conv1", p + ".bn1", 1, 0, s);
      b.conv2 = load_conv_bn(f, p + ".conv2", p + ".bn2", stride, 1, s);
      b.conv3 = load_conv_bn(f, p + ".conv3", p + ".bn3", 1, 0, s);
      b.has_down = f.has(p + ".downsample.0.weight");
      if (b.has_down) b.down = load_conv_bn(f, p + ".downsample.0", p + ".downsample.1", stride, 0, s);
      list.push_back(std::move(b));
    }
    stages_.push_back(std::move(list));
  }
  for (size_t i = 0; i < returned_.size(); i++) {
    const std::string idx = std::to_string(i);
    inner_.push_back(load_conv(f, "backbone.fpn.inner_blocks." + idx + ".0", 1, 0, s));
    layer_.push_back(load_conv(f, "backbone.fpn.layer_blocks." + idx + ".0", 1, 1, s));
  }
  if (extra_ == Extra::P6P7) {
    p6_ = load_conv(f, "backbone.fpn.extra_blocks.p6", 2, 1, s);
    p7_ = load_conv(f, "backbone.fpn.extra_blocks.p7", 2, 1, s);
  }
}

at::Tensor ResNetFpn::block(const Bottleneck& b, const at::Tensor& x) const {
  auto out = run_conv(b.conv1, x, Act::Relu, s_);
  out = run_conv(b.conv2, out, Act::Relu, s_);
  const at::Tensor identity = b.has_down ? run_conv(b.down, x, Act::None, s_) : x;
  return run_conv(b.conv3, out, Act::Relu, s_, &identity);
}

std::vector<at::Tensor> ResNetFpn::forward(const at::Tensor& images, Dumps* dumps) const {
  auto x = run_conv(stem_, images, Act::Relu, s_);
  x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  if (dumps) (*dumps)["body.stem"] = x;
  std::vector<at::Tensor> stage_out;
  for (const auto& stage : stages_) {
    for (const auto& b : stage) x = block(b, x);
    stage_out.push_back(x);
    if (dumps) (*dumps)["body.layer" + std::to_string(stage_out.size())] = x;
  }
  std::vector<at::Tensor> c;
  for (int r : returned_) c.push_back(stage_out[r - 1]);

  // FeaturePyramidNetwork.forward: top-down with nearest upsampling to the lateral's size.
  const size_t n = c.size();
  std::vector<at::Tensor> results(n);
  auto last_inner = run_conv(inner_[n - 1], c[n - 1], Act::None, s_);
  results[n - 1] = run_conv(layer_[n - 1], last_inner, Act::None, s_);
  for (int idx = static_cast<int>(n) - 2; idx >= 0; idx--) {
    auto lateral = run_conv(inner_[idx], c[idx], Act::None, s_);
    auto top_down = at::upsample_nearest2d(last_inner, {lateral.size(2), lateral.size(3)});
    last_inner = lateral + top_down;
    results[idx] = run_conv(layer_[idx], last_inner, Act::None, s_);
  }
  if (extra_ == Extra::MaxPool) {
    // LastLevelMaxPool: F.max_pool2d(x, kernel_size=1, stride=2, padding=0).
    results.push_back(at::max_pool2d(results[n - 1], {1, 1}, {2, 2}, {0, 0}));
  } else {
    // LastLevelP6P7 with use_P5: p6 = conv(P5), p7 = conv(relu(p6)).
    auto p6 = run_conv(p6_, results[n - 1], Act::None, s_);
    auto p7 = run_conv(p7_, at::relu(p6), Act::None, s_);
    results.push_back(p6);
    results.push_back(p7);
  }
  return results;
}

}  // namespace dn
