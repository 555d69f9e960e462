// detbench-train's C++ shim over libtorch: what the training step needs and the tch crate does
// not reach. Compiled by crates/train/build.rs against the libtorch tch builds with; it links
// libtorch_cpu only (CUDA pieces live in cuda_shim.cpp, opened at run time).
//
// * The scripted module: tch passes a `List[Dict[str, Tensor]]` as `List[Any]`, which the
//   scripted detectors' `forward(images, targets)` refuses; here the targets are built as a typed
//   c10::List<c10::Dict<std::string, at::Tensor>>. Also `Module::to(device)` without a dtype.
// * Autocast (`torch.autocast(device_type, dtype)`: enabled flag, dtype, nesting, cache) around
//   the forward pass and the loss sum, as engine.py's `with torch.cuda.amp.autocast(...)`.
// * SGD as torch.optim.SGD's foreach implementation (`_multi_tensor_sgd`) and GradScaler's
//   `_amp_foreach_non_finite_check_and_unscale_` / `_amp_update_scale_`.
// * TF32 and deterministic-algorithm switches (at::Context), as `torch.backends.*` sets them.
// * c10d: FileStore / TCPStore rendezvous, ProcessGroupGloo, and all-reduce / broadcast over any
//   c10d::Backend (ProcessGroupNCCL comes from cuda_shim.cpp).
//
// Every function catches C++ exceptions and reports them through a caller-provided buffer.

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

void write_error(char* buffer, size_t length, const char* message) {
  if (buffer == nullptr || length == 0) return;
  std::snprintf(buffer, length, "%s", message);
}

#define DBT_TRY try {
#define DBT_CATCH(err, n, fail)              \
  }                                          \
  catch (const std::exception& e) {          \
    write_error(err, n, e.what());           \
    return fail;                             \
  }                                          \
  catch (...) {                              \
    write_error(err, n, "unknown C++ error"); \
    return fail;                             \
  }

at::Device make_device(int device_type, int index) {
  return device_type == 1 ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index))
                          : at::Device(at::kCPU);
}

// torch.autocast's __enter__/__exit__ (torch/amp/autocast_mode.py) for one device type.
struct Autocast {
  at::DeviceType device;
  bool prev_enabled;
  at::ScalarType prev_dtype;
  bool prev_cache;
  Autocast(at::DeviceType d, at::ScalarType dtype) : device(d) {
    prev_cache = at::autocast::is_autocast_cache_enabled();
    prev_enabled = at::autocast::is_autocast_enabled(d);
    prev_dtype = at::autocast::get_autocast_dtype(d);
    at::autocast::set_autocast_enabled(d, true);
    at::autocast::set_autocast_dtype(d, dtype);
    at::autocast::increment_nesting();
    at::autocast::set_autocast_cache_enabled(true);
  }
  ~Autocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device, prev_enabled);
    at::autocast::set_autocast_dtype(device, prev_dtype);
    at::autocast::set_autocast_cache_enabled(prev_cache);
  }
};

// torch.optim.SGD (foreach) plus an optional torch.amp.GradScaler.
struct Optimizer {
  std::vector<at::Tensor> params;
  std::vector<at::Tensor> momentum;  // undefined until the parameter's first step
  double mu, dampening, weight_decay;
  bool scaling = false;
  at::Tensor scale, growth_tracker;
  double growth, backoff;
  int64_t interval;
};

at::Tensor* out_tensor(const at::Tensor& t) { return new at::Tensor(t); }

// torch/optim/sgd.py `_multi_tensor_sgd` (maximize=False, nesterov=False) over the parameters
// that have a gradient (`if p.grad is not None`).
void sgd_step(Optimizer& opt, double lr) {
  std::vector<at::Tensor> params, grads;
  std::vector<size_t> index;
  for (size_t i = 0; i < opt.params.size(); ++i) {
    if (opt.params[i].grad().defined()) {
      params.push_back(opt.params[i]);
      grads.push_back(opt.params[i].grad());
      index.push_back(i);
    }
  }
  if (grads.empty()) return;
  std::vector<at::Tensor> d_p = grads;
  if (opt.weight_decay != 0) d_p = at::_foreach_add(grads, params, opt.weight_decay);
  if (opt.mu != 0) {
    bool all_have_buffers = true;
    for (size_t i : index) all_have_buffers = all_have_buffers && opt.momentum[i].defined();
    std::vector<at::Tensor> bufs;
    if (all_have_buffers) {
      for (size_t i : index) bufs.push_back(opt.momentum[i]);
      at::_foreach_mul_(bufs, opt.mu);
      at::_foreach_add_(bufs, d_p, 1 - opt.dampening);
    } else {
      for (size_t k = 0; k < index.size(); ++k) {
        at::Tensor& buf = opt.momentum[index[k]];
        if (!buf.defined()) {
          buf = at::clone(d_p[k]).detach();
        } else {
          buf.mul_(opt.mu).add_(d_p[k], 1 - opt.dampening);
        }
        bufs.push_back(buf);
      }
    }
    d_p = bufs;
  }
  at::_foreach_add_(params, d_p, -lr);
}

}  // namespace

extern "C" {

// ---------------------------------------------------------------------------------------------
// The scripted module.

void* dbt_module_load(const char* path, char* err, size_t n) {
  DBT_TRY
  return new torch::jit::Module(torch::jit::load(std::string(path), at::Device(at::kCPU)));
  DBT_CATCH(err, n, nullptr)
}

void dbt_module_free(void* m) { delete static_cast<torch::jit::Module*>(m); }

int dbt_module_train(void* m, int on, char* err, size_t n) {
  DBT_TRY
  static_cast<torch::jit::Module*>(m)->train(on != 0);
  return 0;
  DBT_CATCH(err, n, 1)
}

// Module::to(device): parameters and buffers move, dtypes stay (as `model.to("cuda")`).
int dbt_module_to(void* m, int device_type, int index, char* err, size_t n) {
  DBT_TRY
  static_cast<torch::jit::Module*>(m)->to(make_device(device_type, index));
  return 0;
  DBT_CATCH(err, n, 1)
}

// Calls `cb(ctx, name, tensor, requires_grad)` for every parameter, in `model.parameters()`
// order; the tensor is a new handle (owned by the caller) sharing the parameter.
int dbt_module_parameters(void* m, void* ctx, void (*cb)(void*, const char*, at::Tensor*, int),
                          char* err, size_t n) {
  DBT_TRY
  for (const auto& p : static_cast<torch::jit::Module*>(m)->named_parameters(true)) {
    cb(ctx, p.name.c_str(), out_tensor(p.value), p.value.requires_grad() ? 1 : 0);
  }
  return 0;
  DBT_CATCH(err, n, 1)
}

// As dbt_module_parameters, for buffers (BatchNorm running statistics).
int dbt_module_buffers(void* m, void* ctx, void (*cb)(void*, const char*, at::Tensor*, int),
                       char* err, size_t n) {
  DBT_TRY
  for (const auto& b : static_cast<torch::jit::Module*>(m)->named_buffers(true)) {
    cb(ctx, b.name.c_str(), out_tensor(b.value), 0);
  }
  return 0;
  DBT_CATCH(err, n, 1)
}

// forward(images, targets) in training mode. Image i's target has `counts[i]` entries, taken in
// order from `keys`/`values`. Inside autocast (`autocast_dtype` a c10::ScalarType, -1 for none,
// on `device_type`) the model runs and its losses are summed in dict order, as engine.py's
// `sum(loss for loss in loss_dict.values())`; `cb(ctx, name, loss)` receives each loss, then
// `*total` the sum.
int dbt_module_forward(void* m, at::Tensor** images, int num_images, const char** keys,
                       at::Tensor** values, const int* counts, int device_type,
                       int autocast_dtype, void* ctx, void (*cb)(void*, const char*, at::Tensor*),
                       at::Tensor** total, char* err, size_t n) {
  DBT_TRY
  c10::List<at::Tensor> image_list;
  c10::List<c10::Dict<std::string, at::Tensor>> targets;
  int at = 0;
  for (int i = 0; i < num_images; ++i) {
    image_list.push_back(*images[i]);
    c10::Dict<std::string, at::Tensor> target;
    for (int j = 0; j < counts[i]; ++j, ++at) target.insert(std::string(keys[at]), *values[at]);
    targets.push_back(std::move(target));
  }
  std::vector<c10::IValue> inputs{c10::IValue(image_list), c10::IValue(targets)};
  std::unique_ptr<Autocast> autocast;
  if (autocast_dtype >= 0) {
    autocast = std::make_unique<Autocast>(device_type == 1 ? at::kCUDA : at::kCPU,
                                          static_cast<at::ScalarType>(autocast_dtype));
  }
  c10::IValue out = static_cast<torch::jit::Module*>(m)->forward(inputs);
  // Scripted detectors return (losses, detections); eager ones the losses alone.
  c10::IValue losses = out.isTuple() ? out.toTupleRef().elements().at(0) : out;
  if (!losses.isGenericDict()) {
    throw std::runtime_error("forward(images, targets) returned " + out.tagKind() +
                             ", not the loss dict; is the module a torchvision detector?");
  }
  at::Tensor sum;
  for (const auto& item : losses.toGenericDict()) {
    at::Tensor loss = item.value().toTensor();
    cb(ctx, item.key().toStringRef().c_str(), out_tensor(loss));
    sum = sum.defined() ? sum + loss : loss;
  }
  if (!sum.defined()) throw std::runtime_error("the model returned no loss");
  *total = out_tensor(sum);
  return 0;
  DBT_CATCH(err, n, 1)
}

// Saves the module in eval mode (the inference backend's mode), then restores the mode.
int dbt_module_save(void* m, const char* path, char* err, size_t n) {
  DBT_TRY
  auto* module = static_cast<torch::jit::Module*>(m);
  const bool training = module->is_training();
  module->eval();
  module->save(std::string(path));
  module->train(training);
  return 0;
  DBT_CATCH(err, n, 1)
}

// ---------------------------------------------------------------------------------------------
// Global switches.

// torch.backends.cuda.matmul.allow_tf32 / torch.backends.cudnn.allow_tf32.
void dbt_set_tf32(int matmul, int cudnn) {
  at::globalContext().setAllowTF32CuBLAS(matmul != 0);
  at::globalContext().setAllowTF32CuDNN(cudnn != 0);
}

void dbt_get_tf32(int* matmul, int* cudnn) {
  *matmul = at::globalContext().allowTF32CuBLAS() ? 1 : 0;
  *cudnn = at::globalContext().allowTF32CuDNN() ? 1 : 0;
}

// torch.use_deterministic_algorithms(on).
int dbt_set_deterministic(int on, char* err, size_t n) {
  DBT_TRY
  at::globalContext().setDeterministicAlgorithms(on != 0, false);
  return 0;
  DBT_CATCH(err, n, 1)
}

// ---------------------------------------------------------------------------------------------
// SGD + GradScaler.

void* dbt_opt_new(at::Tensor** params, int num, double momentum, double dampening,
                  double weight_decay, char* err, size_t n) {
  DBT_TRY
  auto* opt = new Optimizer();
  for (int i = 0; i < num; ++i) opt->params.push_back(*params[i]);
  opt->momentum.resize(num);
  opt->mu = momentum;
  opt->dampening = dampening;
  opt->weight_decay = weight_decay;
  return opt;
  DBT_CATCH(err, n, nullptr)
}

void dbt_opt_free(void* o) { delete static_cast<Optimizer*>(o); }

// torch.amp.GradScaler(init_scale, growth_factor, backoff_factor, growth_interval) on `device`:
// `_scale = torch.full((), init_scale, float32)`, `_growth_tracker = torch.full((), 0, int32)`.
int dbt_opt_enable_scaler(void* o, int device_type, int index, double init_scale, double growth,
                          double backoff, long long interval, char* err, size_t n) {
  DBT_TRY
  auto* opt = static_cast<Optimizer*>(o);
  auto device = make_device(device_type, index);
  opt->scaling = true;
  opt->scale = at::full({}, init_scale, at::TensorOptions().dtype(at::kFloat).device(device));
  opt->growth_tracker = at::full({}, 0, at::TensorOptions().dtype(at::kInt).device(device));
  opt->growth = growth;
  opt->backoff = backoff;
  opt->interval = interval;
  return 0;
  DBT_CATCH(err, n, 1)
}

// optimizer.zero_grad() (set_to_none=True), then `loss.backward()` or, with the scaler,
// `scaler.scale(loss).backward()` (`loss * _scale`).
int dbt_opt_backward(void* o, at::Tensor* loss, char* err, size_t n) {
  DBT_TRY
  auto* opt = static_cast<Optimizer*>(o);
  for (auto& p : opt->params) p.mutable_grad() = at::Tensor();
  at::Tensor l = opt->scaling ? (*loss) * opt->scale.to(loss->device(), /*non_blocking=*/true)
                              : *loss;
  l.backward();
  return 0;
  DBT_CATCH(err, n, 1)
}

// The gradients of the parameters that have one, as new handles (for the all-reduce).
int dbt_opt_grads(void* o, void* ctx, void (*cb)(void*, const char*, at::Tensor*, int), char* err,
                  size_t n) {
  DBT_TRY
  for (auto& p : static_cast<Optimizer*>(o)->params) {
    if (p.grad().defined()) cb(ctx, "", out_tensor(p.grad()), 0);
  }
  return 0;
  DBT_CATCH(err, n, 1)
}

// scaler.step(optimizer) + scaler.update(), or optimizer.step() without the scaler.
// `*found_inf` is 1 when the scaler found inf/NaN gradients and skipped the step;
// `*scale_used` is the scale this step's loss was multiplied by.
int dbt_opt_step(void* o, double lr, int* found_inf, double* scale_used, char* err, size_t n) {
  DBT_TRY
  auto* opt = static_cast<Optimizer*>(o);
  *found_inf = 0;
  *scale_used = 1.0;
  at::NoGradGuard no_grad;
  if (!opt->scaling) {
    sgd_step(*opt, lr);
    return 0;
  }
  *scale_used = opt->scale.item<double>();
  std::vector<at::Tensor> grads;
  for (auto& p : opt->params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  // GradScaler.unscale_: inv_scale = _scale.double().reciprocal().float(), found_inf = 0.0
  at::Tensor inv_scale = opt->scale.to(at::kDouble).reciprocal().to(at::kFloat);
  at::Tensor found =
      at::full({}, 0.0, at::TensorOptions().dtype(at::kFloat).device(opt->scale.device()));
  if (!grads.empty()) at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv_scale);
  // _maybe_opt_step: `if not sum(v.item() for v in found_inf_per_device.values())`
  *found_inf = found.item<float>() != 0.0f ? 1 : 0;
  if (!*found_inf) sgd_step(*opt, lr);
  // GradScaler.update()
  at::_amp_update_scale_(opt->scale, opt->growth_tracker, found, opt->growth, opt->backoff,
                         opt->interval);
  return 0;
  DBT_CATCH(err, n, 1)
}

// The scale the next step will use (GradScaler.get_scale()).
double dbt_opt_scale(void* o) {
  auto* opt = static_cast<Optimizer*>(o);
  try {
    return opt->scaling ? opt->scale.item<double>() : 1.0;
  } catch (...) {
    return -1.0;
  }
}

// ---------------------------------------------------------------------------------------------
// c10d.

// A rendezvous store: `file:///path` (FileStore) or `tcp://host:port` (TCPStore; rank 0 is the
// server). Returns a released c10::intrusive_ptr<c10d::Store>.
void* dbt_store_new(const char* init, int rank, int world_size, char* err, size_t n) {
  DBT_TRY
  std::string url(init);
  c10::intrusive_ptr<c10d::Store> store;
  if (url.rfind("file://", 0) == 0) {
    store = c10::make_intrusive<c10d::FileStore>(url.substr(7), world_size);
  } else if (url.rfind("tcp://", 0) == 0) {
    std::string rest = url.substr(6);
    auto colon = rest.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("tcp:// needs host:port");
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(std::stoi(rest.substr(colon + 1)));
    opts.isServer = rank == 0;
    opts.numWorkers = world_size;
    store = c10::make_intrusive<c10d::TCPStore>(rest.substr(0, colon), opts);
  } else {
    throw std::runtime_error("unknown rendezvous `" + url + "` (expected file:///path or tcp://host:port)");
  }
  return store.release();
  DBT_CATCH(err, n, nullptr)
}

void dbt_store_free(void* s) {
  c10::intrusive_ptr<c10d::Store>::reclaim(static_cast<c10d::Store*>(s));
}

// ProcessGroupGloo over `store` (borrowed), on the default device (loopback or hostname).
void* dbt_pg_new_gloo(void* store, int rank, int world_size, char* err, size_t n) {
  DBT_TRY
  auto s = c10::intrusive_ptr<c10d::Store>::unsafe_reclaim_from_nonowning(
      static_cast<c10d::Store*>(store));
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("detbench-gloo", s);
  auto options = c10d::ProcessGroupGloo::Options::create();
  options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world_size, options);
  c10::intrusive_ptr<c10d::Backend> backend = pg;
  return backend.release();
  DBT_CATCH(err, n, nullptr)
}

void dbt_pg_free(void* pg) {
  c10::intrusive_ptr<c10d::Backend>::reclaim(static_cast<c10d::Backend*>(pg));
}

// Sum over ranks, in place, waiting for completion.
int dbt_pg_allreduce_sum(void* pg, at::Tensor** tensors, int num, char* err, size_t n) {
  DBT_TRY
  auto* backend = static_cast<c10d::Backend*>(pg);
  for (int i = 0; i < num; ++i) {
    std::vector<at::Tensor> one{*tensors[i]};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    backend->allreduce(one, opts)->wait();
  }
  return 0;
  DBT_CATCH(err, n, 1)
}

// Copies rank `root`'s tensors into every rank's, in place.
int dbt_pg_broadcast(void* pg, at::Tensor** tensors, int num, int root, char* err, size_t n) {
  DBT_TRY
  auto* backend = static_cast<c10d::Backend*>(pg);
  for (int i = 0; i < num; ++i) {
    std::vector<at::Tensor> one{*tensors[i]};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    backend->broadcast(one, opts)->wait();
  }
  return 0;
  DBT_CATCH(err, n, 1)
}

}  // extern "C"
