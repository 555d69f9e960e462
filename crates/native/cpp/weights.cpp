// detbench native engine: reading the TorchScript model file (see weights.h).
#include "weights.h"

#include <torch/script.h>

#include <sstream>

namespace dn {

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::FasterRcnn:
      return "fasterrcnn_resnet50_fpn";
    case Arch::MaskRcnn:
      return "maskrcnn_resnet50_fpn";
    case Arch::RetinaNet:
      return "retinanet_resnet50_fpn";
  }
  return "unknown";
}

struct ModelFile::Attr {
  c10::IValue value;
};

ModelFile::ModelFile(const std::string& path) : path_(path) {
  try {
    module_ = std::make_unique<torch::jit::Module>(torch::jit::load(path, c10::Device(at::kCPU)));
  } catch (const std::exception& e) {
    throw EngineError(ErrorKind::ModelFile,
                      "cannot load " + path + " as TorchScript: " + std::string(e.what()));
  }
  type_name_ = module_->type()->name() ? module_->type()->name()->qualifiedName() : "?";
  for (const auto& p : module_->named_parameters(/*recurse=*/true)) {
    tensors_[p.name] = p.value.detach();
  }
  for (const auto& b : module_->named_buffers(/*recurse=*/true)) {
    tensors_[b.name] = b.value.detach();
  }
}

ModelFile::~ModelFile() = default;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

Arch ModelFile::arch() const {
  const std::string known =
      "the native engine runs torchvision's fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn and "
      "retinanet_resnet50_fpn (v1)";
  auto unknown = [&](const std::string& why) {
    return EngineError(ErrorKind::UnknownArchitecture,
                       "the native engine does not know the architecture of " + path_ + ": " +
                           why + "; " + known);
  };
  Arch arch;
  if (ends_with(type_name_, ".FasterRCNN")) {
    arch = Arch::FasterRcnn;
  } else if (ends_with(type_name_, ".MaskRCNN")) {
    arch = Arch::MaskRcnn;
  } else if (ends_with(type_name_, ".RetinaNet")) {
    arch = Arch::RetinaNet;
  } else {
    throw unknown("its TorchScript class is " + type_name_);
  }
  // The v1 R50-FPN layout: a ResNet body, FPN without norms, the v1 heads.
  const std::vector<std::pair<std::string, bool>> layout = {
      {"backbone.body.layer1.0.conv1.weight", true},
      {"backbone.body.layer4.2.conv3.weight", true},
      {"backbone.body.layer3.5.conv3.weight", true},
      {"backbone.body.layer3.6.conv3.weight", false},
      {"backbone.fpn.inner_blocks.0.1.weight", false},
  };
  std::vector<std::pair<std::string, bool>> heads;
  if (arch == Arch::RetinaNet) {
    heads = {{"head.classification_head.cls_logits.weight", true},
             {"head.classification_head.conv.0.1.weight", false}};
  } else {
    heads = {{"roi_heads.box_head.fc6.weight", true}, {"rpn.head.conv.1.0.weight", false}};
  }
  if (arch == Arch::MaskRcnn) heads.push_back({"roi_heads.mask_head.0.0.weight", true});
  for (const auto& list : {layout, heads}) {
    for (const auto& [key, wanted] : list) {
      if (has(key) != wanted) {
        throw unknown(std::string("it is a ") + type_name_ + " but not the R50-FPN v1 layout (" +
                      (wanted ? "no parameter " : "unexpected parameter ") + key + ")");
      }
    }
  }
  return arch;
}

at::Tensor ModelFile::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    throw EngineError(ErrorKind::ModelFile, path_ + " has no parameter or buffer `" + name + "`");
  }
  return it->second;
}

ModelFile::Attr ModelFile::attr(const std::string& path) const {
  std::stringstream ss(path);
  std::string step;
  c10::IValue current(module_->_ivalue());
  while (std::getline(ss, step, '.')) {
    if (!current.isObject()) {
      throw EngineError(ErrorKind::ModelFile, path_ + ": `" + path + "` does not name an attribute");
    }
    auto object = current.toObject();
    if (!object->type()->hasAttribute(step)) {
      throw EngineError(ErrorKind::ModelFile,
                        path_ + ": no attribute `" + step + "` on the way to `" + path + "`");
    }
    current = object->getAttr(step);
  }
  return Attr{current};
}

double ModelFile::attr_double(const std::string& path) const {
  auto v = attr(path).value;
  if (v.isDouble()) return v.toDouble();
  if (v.isInt()) return static_cast<double>(v.toInt());
  throw EngineError(ErrorKind::ModelFile, path_ + ": `" + path + "` is not a number");
}

int64_t ModelFile::attr_int(const std::string& path) const {
  auto v = attr(path).value;
  if (v.isInt()) return v.toInt();
  throw EngineError(ErrorKind::ModelFile, path_ + ": `" + path + "` is not an integer");
}

namespace {

std::vector<c10::IValue> elements(const c10::IValue& v) {
  if (v.isTuple()) return v.toTupleRef().elements().vec();
  if (v.isList()) return v.toList().vec();
  return {};
}

}  // namespace

std::vector<double> ModelFile::attr_doubles(const std::string& path) const {
  std::vector<double> out;
  for (const auto& e : elements(attr(path).value)) {
    out.push_back(e.isDouble() ? e.toDouble() : static_cast<double>(e.toInt()));
  }
  return out;
}

std::vector<int64_t> ModelFile::attr_ints(const std::string& path) const {
  std::vector<int64_t> out;
  for (const auto& e : elements(attr(path).value)) out.push_back(e.toInt());
  return out;
}

std::vector<at::Tensor> ModelFile::attr_tensors(const std::string& path) const {
  std::vector<at::Tensor> out;
  for (const auto& e : elements(attr(path).value)) out.push_back(e.toTensor());
  return out;
}

int64_t ModelFile::attr_dict_int(const std::string& path, const std::string& key) const {
  auto v = attr(path).value;
  if (!v.isGenericDict()) {
    throw EngineError(ErrorKind::ModelFile, path_ + ": `" + path + "` is not a dict");
  }
  for (const auto& entry : v.toGenericDict()) {
    if (entry.key().isString() && entry.key().toStringRef() == key) return entry.value().toInt();
  }
  throw EngineError(ErrorKind::ModelFile, path_ + ": `" + path + "` has no key `" + key + "`");
}

at::Tensor prepare(const at::Tensor& t, const Settings& s) {
  auto options = at::TensorOptions()
                     .dtype(act_dtype(s))
                     .device(is_cuda(s) ? at::Device(at::kCUDA, s.device) : at::Device(at::kCPU));
  auto out = t.to(options).contiguous();
  if (s.channels_last && out.dim() == 4) out = out.contiguous(at::MemoryFormat::ChannelsLast);
  return out;
}

Conv load_conv(const ModelFile& f, const std::string& prefix, int64_t stride, int64_t padding,
               const Settings& s) {
  Conv c;
  c.weight = prepare(f.tensor(prefix + ".weight"), s);
  c.bias = prepare(f.tensor(prefix + ".bias"), s);
  c.stride = stride;
  c.padding = padding;
  return c;
}

at::Tensor pad_rows(const at::Tensor& t, int64_t multiple) {
  const int64_t rows = t.size(0);
  const int64_t padded = (rows + multiple - 1) / multiple * multiple;
  if (padded == rows) return t;
  auto shape = t.sizes().vec();
  shape[0] = padded - rows;
  return at::cat({t, at::zeros(shape, t.options())}, 0);
}

Conv load_conv_bn(const ModelFile& f, const std::string& conv, const std::string& bn,
                  int64_t stride, int64_t padding, const Settings& s) {
  const double eps = 1e-5;  // torchvision.ops.misc.FrozenBatchNorm2d's default
  if (s.exact) {
    // FrozenBatchNorm2d.forward in the model's dtype: scale = w * (rv + eps).rsqrt(),
    // bias = b - rm * scale, then x * scale + bias.
    Conv c;
    c.weight = prepare(f.tensor(conv + ".weight"), s);
    auto gamma = prepare(f.tensor(bn + ".weight"), s), beta = prepare(f.tensor(bn + ".bias"), s);
    auto mean = prepare(f.tensor(bn + ".running_mean"), s), var = prepare(f.tensor(bn + ".running_var"), s);
    auto scale = gamma * (var + eps).rsqrt();
    c.bn_shift = (beta - mean * scale).reshape({1, -1, 1, 1});
    c.bn_scale = scale.reshape({1, -1, 1, 1});
    c.stride = stride;
    c.padding = padding;
    return c;
  }
  auto w = f.tensor(conv + ".weight").to(at::kFloat);
  auto gamma = f.tensor(bn + ".weight").to(at::kFloat);
  auto beta = f.tensor(bn + ".bias").to(at::kFloat);
  auto mean = f.tensor(bn + ".running_mean").to(at::kFloat);
  auto var = f.tensor(bn + ".running_var").to(at::kFloat);
  auto scale = gamma * (var + eps).rsqrt();
  Conv c;
  c.weight = prepare(w * scale.view({-1, 1, 1, 1}), s);
  c.bias = prepare(beta - mean * scale, s);
  c.stride = stride;
  c.padding = padding;
  return c;
}

Linear load_linear(const ModelFile& f, const std::string& prefix, const Settings& s) {
  return Linear{prepare(f.tensor(prefix + ".weight"), s), prepare(f.tensor(prefix + ".bias"), s)};
}

}  // namespace dn
