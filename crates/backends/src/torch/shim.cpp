// detbench's C++ shim over libtorch, for the few settings the tch crate does not expose.
// Compiled by crates/backends/build.rs against the same libtorch headers tch builds with.
//
// * The quantized engine: tch's `QEngine` knows FBGEMM and QNNPACK only, but PyTorch's default
//   on x86-64 (and the engine the D2Go reference used) is `x86` (at::QEngine::X86), which
//   dispatches between fbgemm and oneDNN kernels. This is what
//   `torch.backends.quantized.engine = "x86"` does (torch/csrc/Module.cpp: THPModule_setQEngine
//   -> at::globalContext().setQEngine).
// * Whether an operator is registered with the dispatcher (torchvision::nms, roi_align), to
//   load torchvision's ops library only once and to say clearly when it is missing.
// * The libtorch version the headers declare (TORCH_VERSION, torch/version.h).
// * c10::InferenceMode, the guard behind `torch.inference_mode()` (tch has only NoGradGuard):
//   besides turning autograd off it skips the autograd and ADInplaceOrView dispatch keys and
//   version-counter bumps on every operator, which host-bound detectors (thousands of small
//   post-processing ops per image) feel.
//
// Every function catches C++ exceptions and reports them through a caller-provided buffer, so
// no exception crosses into Rust.

#include <ATen/Context.h>
#include <c10/core/InferenceMode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/version.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace {

void write_error(char* buffer, size_t length, const char* message) {
  if (buffer == nullptr || length == 0) return;
  std::snprintf(buffer, length, "%s", message);
}

bool parse_qengine(const char* name, at::QEngine* out) {
  const std::string wanted(name);
  if (wanted == "x86") {
    *out = at::QEngine::X86;
  } else if (wanted == "fbgemm") {
    *out = at::QEngine::FBGEMM;
  } else if (wanted == "qnnpack") {
    *out = at::QEngine::QNNPACK;
  } else if (wanted == "onednn") {
    *out = at::QEngine::ONEDNN;
  } else {
    return false;
  }
  return true;
}

const char* qengine_name(at::QEngine engine) {
  switch (engine) {
    case at::QEngine::X86:
      return "x86";
    case at::QEngine::FBGEMM:
      return "fbgemm";
    case at::QEngine::QNNPACK:
      return "qnnpack";
    case at::QEngine::ONEDNN:
      return "onednn";
    default:
      return "none";
  }
}

}  // namespace

extern "C" {

// Selects the quantized engine by name (x86, fbgemm, qnnpack, onednn). Returns 0 on success,
// 1 when the name is unknown or this libtorch build does not support the engine (message in
// `error`).
int detbench_set_qengine(const char* name, char* error, size_t error_length) {
  try {
    at::QEngine engine;
    if (!parse_qengine(name, &engine)) {
      write_error(error, error_length, "unknown quantized engine (expected x86, fbgemm, qnnpack or onednn)");
      return 1;
    }
    const auto& supported = at::globalContext().supportedQEngines();
    bool found = false;
    std::string names;
    for (auto e : supported) {
      if (e == engine) found = true;
      if (!names.empty()) names += ", ";
      names += qengine_name(e);
    }
    if (!found) {
      const std::string message = "this libtorch build does not support quantized engine `" +
                                  std::string(name) + "` (it supports: " + names + ")";
      write_error(error, error_length, message.c_str());
      return 1;
    }
    at::globalContext().setQEngine(engine);
    return 0;
  } catch (const std::exception& e) {
    write_error(error, error_length, e.what());
    return 1;
  }
}

// The quantized engine in use, as a static string (x86, fbgemm, qnnpack, onednn, none).
const char* detbench_qengine() {
  try {
    return qengine_name(at::globalContext().qEngine());
  } catch (...) {
    return "none";
  }
}

// 1 when an operator with this qualified name (e.g. "torchvision::nms", overload "") is
// registered with the dispatcher, 0 otherwise.
int detbench_has_operator(const char* qualified_name) {
  try {
    auto handle = c10::Dispatcher::singleton().findSchema(c10::OperatorName(qualified_name, ""));
    return handle.has_value() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

// Enters inference mode on the calling thread; the returned guard must be released on the same
// thread with detbench_inference_mode_exit. Null when libtorch refused (message in `error`).
void* detbench_inference_mode_enter(char* error, size_t error_length) {
  try {
    return new c10::InferenceMode(true);
  } catch (const std::exception& e) {
    write_error(error, error_length, e.what());
    return nullptr;
  }
}

// Leaves the inference mode entered by detbench_inference_mode_enter (restores the thread's
// previous mode).
void detbench_inference_mode_exit(void* guard) {
  delete static_cast<c10::InferenceMode*>(guard);
}

// The libtorch version of the headers this shim was compiled against.
const char* detbench_torch_header_version() { return TORCH_VERSION; }

}  // extern "C"
