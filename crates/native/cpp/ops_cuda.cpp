// detbench native engine: the custom kernels on CUDA. kernels/kernels.cuh is compiled at run
// time by NVRTC (libnvrtc.so.13, loaded with dlopen) into a cubin for the device's architecture
// and launched through the CUDA driver API (entry points from the runtime that libtorch_cuda
// already loaded, `cudaGetDriverEntryPointByVersion`), on PyTorch's current stream, so the
// launches are captured into CUDA graphs like any ATen kernel.
#include "ops.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <nvrtc.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include <c10/util/Half.h>

#include <cmath>

#include "kernels/kernels.cuh"   // DnLevels, the launch parameters
#include "kernels_source.h"  // kKernelsSource: kernels/kernels.cuh as a string (build.rs)

namespace dn::cuda {

namespace {

struct Nvrtc {
  std::string path;
  decltype(&nvrtcCreateProgram) create;
  decltype(&nvrtcCompileProgram) compile;
  decltype(&nvrtcGetProgramLogSize) log_size;
  decltype(&nvrtcGetProgramLog) log;
  decltype(&nvrtcGetPTXSize) ptx_size;
  decltype(&nvrtcGetPTX) ptx;
  decltype(&nvrtcGetCUBINSize) cubin_size;
  decltype(&nvrtcGetCUBIN) cubin;
  decltype(&nvrtcDestroyProgram) destroy;
  decltype(&nvrtcGetErrorString) error;
};

// The folder of the libcudart this process uses (the pip wheels put libnvrtc beside it).
std::string cudart_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&cudaGetDeviceCount), &info) == 0 || !info.dli_fname) return "";
  std::string file(info.dli_fname);
  auto slash = file.rfind('/');
  return slash == std::string::npos ? "" : file.substr(0, slash);
}

const Nvrtc& nvrtc() {
  static Nvrtc lib = [] {
    std::vector<std::string> tried;
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("DETBENCH_NVRTC"); env && *env) candidates.push_back(env);
    tried.push_back(std::string("$DETBENCH_NVRTC") +
                    (candidates.empty() ? " (unset)" : "=" + candidates[0]));
    candidates.push_back("libnvrtc.so.13");
    tried.push_back("libnvrtc.so.13 on the loader path");
    const std::string folder = cudart_folder();
    if (!folder.empty()) {
      candidates.push_back(folder + "/libnvrtc.so.13");
      tried.push_back(folder + "/libnvrtc.so.13 (beside libcudart)");
    }
    void* handle = nullptr;
    std::string used;
    for (const auto& c : candidates) {
      // NVRTC opens libnvrtc-builtins.so.13.0 by name; from a folder off the loader path it is
      // found only if it is loaded already.
      auto slash = c.rfind('/');
      if (slash != std::string::npos) {
        dlopen((c.substr(0, slash) + "/libnvrtc-builtins.so.13.0").c_str(), RTLD_NOW | RTLD_GLOBAL);
      }
      handle = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle) {
        used = c;
        break;
      }
    }
    if (!handle) {
      std::string message = "NVRTC (libnvrtc.so.13, CUDA 13) was not found; tried: ";
      for (size_t i = 0; i < tried.size(); i++) message += (i ? ", " : "") + tried[i];
      message += ". Install the nvidia-cuda-nvrtc wheel beside torch (scripts/setup.sh --torch) "
                 "or set DETBENCH_NVRTC=/path/to/libnvrtc.so.13";
      throw EngineError(ErrorKind::CudaLibrary, message);
    }
    Nvrtc n;
    n.path = used;
    auto sym = [&](const char* name) {
      void* p = dlsym(handle, name);
      if (!p) {
        throw EngineError(ErrorKind::CudaLibrary, used + " has no symbol " + name +
                                                      " (expected NVRTC 13)");
      }
      return p;
    };
#define DN_SYM(field, name) n.field = reinterpret_cast<decltype(n.field)>(sym(name))
    DN_SYM(create, "nvrtcCreateProgram");
    DN_SYM(compile, "nvrtcCompileProgram");
    DN_SYM(log_size, "nvrtcGetProgramLogSize");
    DN_SYM(log, "nvrtcGetProgramLog");
    DN_SYM(ptx_size, "nvrtcGetPTXSize");
    DN_SYM(ptx, "nvrtcGetPTX");
    DN_SYM(cubin_size, "nvrtcGetCUBINSize");
    DN_SYM(cubin, "nvrtcGetCUBIN");
    DN_SYM(destroy, "nvrtcDestroyProgram");
    DN_SYM(error, "nvrtcGetErrorString");
#undef DN_SYM
    return n;
  }();
  return lib;
}

// Compiles the kernels for `arch` ("sm_90": cubin; "compute_90": PTX).
std::string compile(const std::string& arch, bool cubin) {
  const Nvrtc& n = nvrtc();
  nvrtcProgram program;
  nvrtcResult r = n.create(&program, kKernelsSource, "kernels.cuh", 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) {
    throw EngineError(ErrorKind::Other, std::string("nvrtcCreateProgram: ") + n.error(r));
  }
  const std::string arch_option = "--gpu-architecture=" + arch;
  const char* options[] = {arch_option.c_str(), "--std=c++17"};
  r = n.compile(program, 2, options);
  size_t log_size = 0;
  n.log_size(program, &log_size);
  std::string log(log_size, '\0');
  if (log_size > 1) n.log(program, log.data());
  if (r != NVRTC_SUCCESS) {
    n.destroy(&program);
    throw EngineError(ErrorKind::Other, "NVRTC could not compile the native engine's kernels for " +
                                            arch + ": " + n.error(r) + "\n" + log);
  }
  size_t size = 0;
  std::string out;
  if (cubin) {
    n.cubin_size(program, &size);
    out.resize(size);
    n.cubin(program, out.data());
  } else {
    n.ptx_size(program, &size);
    out.resize(size);
    n.ptx(program, out.data());
  }
  n.destroy(&program);
  return out;
}

struct Driver {
  PFN_cuModuleLoadData_v2000 load;
  PFN_cuModuleGetFunction_v2000 get_function;
  PFN_cuLaunchKernel_v4000 launch;
  PFN_cuGetErrorString_v6000 error;
};

const Driver& driver() {
  static Driver d = [] {
    Driver out{};
    auto get = [](const char* name) {
      void* fn = nullptr;
      cudaDriverEntryPointQueryResult status;
      cudaError_t e = cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &status);
      if (e != cudaSuccess || status != cudaDriverEntryPointSuccess || !fn) {
        throw EngineError(ErrorKind::CudaLibrary,
                          std::string("the CUDA driver does not provide ") + name +
                              " (libcuda.so.1 missing or older than CUDA 12)");
      }
      return fn;
    };
    out.load = reinterpret_cast<PFN_cuModuleLoadData_v2000>(get("cuModuleLoadData"));
    out.get_function = reinterpret_cast<PFN_cuModuleGetFunction_v2000>(get("cuModuleGetFunction"));
    out.launch = reinterpret_cast<PFN_cuLaunchKernel_v4000>(get("cuLaunchKernel"));
    out.error = reinterpret_cast<PFN_cuGetErrorString_v6000>(get("cuGetErrorString"));
    return out;
  }();
  return d;
}

void check(CUresult r, const char* what) {
  if (r == CUDA_SUCCESS) return;
  const char* message = nullptr;
  driver().error(r, &message);
  throw EngineError(ErrorKind::Other, std::string(what) + ": " + (message ? message : "?"));
}

struct Module {
  CUfunction nms_mask, nms_reduce, roi_f32, roi_f16, paste_f32, paste_f16, pre_f32, pre_f16;
};

// The compiled kernels for the current device, once per device.
const Module& module() {
  static std::mutex lock;
  static std::map<int, Module> modules;
  const int device = at::cuda::current_device();
  std::lock_guard<std::mutex> guard(lock);
  auto it = modules.find(device);
  if (it != modules.end()) return it->second;
  const auto* props = at::cuda::getDeviceProperties(device);
  const std::string arch = "sm_" + std::to_string(props->major) + std::to_string(props->minor);
  const std::string image = compile(arch, /*cubin=*/true);
  CUmodule mod;
  check(driver().load(&mod, image.data()), "cuModuleLoadData");
  Module m{};
  auto fn = [&](const char* name) {
    CUfunction f;
    check(driver().get_function(&f, mod, name), name);
    return f;
  };
  m.nms_mask = fn("dn_nms_mask");
  m.nms_reduce = fn("dn_nms_reduce");
  m.roi_f32 = fn("dn_roi_align_f32");
  m.roi_f16 = fn("dn_roi_align_f16");
  m.paste_f32 = fn("dn_paste_masks_f32");
  m.paste_f16 = fn("dn_paste_masks_f16");
  m.pre_f32 = fn("dn_preprocess_f32");
  m.pre_f16 = fn("dn_preprocess_f16");
  return modules.emplace(device, m).first->second;
}

void launch(CUfunction f, dim3 grid, dim3 block, unsigned shared, void** args, const char* name) {
  auto stream = at::cuda::getCurrentCUDAStream();
  check(driver().launch(f, grid.x, grid.y, grid.z, block.x, block.y, block.z, shared,
                        reinterpret_cast<CUstream>(stream.stream()), args, nullptr),
        name);
}

unsigned blocks_for(int64_t total, int threads) {
  const int64_t b = (total + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(b, 1 << 20)));
}

}  // namespace

std::string compile_ptx(const std::string& arch) { return compile(arch, /*cubin=*/false); }

std::string nvrtc_library() { return nvrtc().path; }

void ensure_kernels() { module(); }

std::pair<at::Tensor, at::Tensor> nms_sorted(const at::Tensor& boxes_in, const at::Tensor& classes_in,
                                             const at::Tensor& counts_in, double threshold,
                                             bool half_boxes, int64_t max_keep) {
  const Module& m = module();
  auto boxes = boxes_in.to(at::kFloat).contiguous();
  auto classes = classes_in.to(at::kLong).contiguous();
  auto counts = counts_in.to(at::kLong).contiguous();
  int n = static_cast<int>(boxes.size(0)), capacity = static_cast<int>(boxes.size(1));
  int words = (capacity + 63) / 64;
  auto mask = at::empty({n, capacity, words}, boxes.options().dtype(at::kLong));
  auto keep = at::empty({n, max_keep}, boxes.options().dtype(at::kLong));
  auto keep_count = at::empty({n}, boxes.options().dtype(at::kLong));
  if (n == 0 || capacity == 0) return {keep.fill_(-1), keep_count.zero_()};
  float thr = static_cast<float>(threshold);
  int half = half_boxes ? 1 : 0, keep_n = static_cast<int>(max_keep);
  void* pb = boxes.data_ptr();
  void* pc = classes.data_ptr();
  void* pn = counts.data_ptr();
  void* pm = mask.data_ptr();
  void* pk = keep.data_ptr();
  void* pkc = keep_count.data_ptr();
  void* mask_args[] = {&pb, &pc, &pn, &capacity, &words, &thr, &half, &pm};
  launch(m.nms_mask, dim3(words, words, n), dim3(64), 0, mask_args, "dn_nms_mask");
  void* reduce_args[] = {&pm, &pn, &capacity, &words, &keep_n, &pk, &pkc};
  launch(m.nms_reduce, dim3(n), dim3(32), static_cast<unsigned>(words * 8), reduce_args,
         "dn_nms_reduce");
  return {keep, keep_count};
}

at::Tensor roi_align_levels(const std::vector<at::Tensor>& features,
                            const std::vector<double>& scales, const at::Tensor& rois_in,
                            const at::Tensor& level_in, int64_t pooled, int64_t sampling_ratio,
                            bool aligned) {
  const Module& m = module();
  TORCH_CHECK(features.size() <= 5, "at most five pyramid levels");
  const auto dtype = features[0].scalar_type();
  DnLevels lv{};
  lv.count = static_cast<int>(features.size());
  for (size_t i = 0; i < features.size(); i++) {
    const auto& f = features[i];
    TORCH_CHECK(f.scalar_type() == dtype, "pyramid levels of one dtype");
    lv.data[i] = f.data_ptr();
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
  int r = static_cast<int>(rois.size(0)), c = static_cast<int>(features[0].size(1));
  int p = static_cast<int>(pooled), sr = static_cast<int>(sampling_ratio), al = aligned ? 1 : 0;
  auto out = at::empty({r, p, p, c}, features[0].options());
  if (r == 0) return out;
  void* pr = rois.data_ptr();
  void* pl = level.data_ptr();
  void* po = out.data_ptr();
  void* args[] = {&lv, &pr, &pl, &r, &c, &p, &p, &sr, &al, &po};
  const int64_t total = static_cast<int64_t>(r) * p * p * c;
  launch(dtype == at::kHalf ? m.roi_f16 : m.roi_f32, dim3(blocks_for(total, 256)), dim3(256), 0,
         args, "dn_roi_align");
  return out;
}

at::Tensor paste_masks(const at::Tensor& masks_in, const at::Tensor& boxes_in,
                       const at::Tensor& count_in, int64_t image_h, int64_t image_w,
                       double threshold) {
  const Module& m = module();
  auto masks = masks_in.contiguous();
  auto boxes = boxes_in.to(at::kLong).contiguous();
  auto count = count_in.to(at::kLong).contiguous();
  int d = static_cast<int>(masks.size(0)), side = static_cast<int>(masks.size(1));
  int h = static_cast<int>(image_h), w = static_cast<int>(image_w), words = (h + 31) / 32;
  float thr = static_cast<float>(threshold);
  auto bits = at::empty({d, w, words}, masks.options().dtype(at::kInt));
  if (d == 0) return bits;
  void* pm = masks.data_ptr();
  void* pb = boxes.data_ptr();
  void* pc = count.data_ptr();
  void* po = bits.data_ptr();
  void* args[] = {&pm, &pb, &pc, &side, &h, &w, &words, &thr, &po};
  launch(masks.scalar_type() == at::kHalf ? m.paste_f16 : m.paste_f32,
         dim3(blocks_for(static_cast<int64_t>(w) * words, 256), d), dim3(256), 0, args,
         "dn_paste_masks");
  return bits;
}

void preprocess_into(const at::Tensor& bgr, const at::Tensor& table, const void* params,
                     at::Tensor out) {
  const Module& m = module();
  DnPre p = *static_cast<const DnPre*>(params);
  int h = static_cast<int>(out.size(1)), w = static_cast<int>(out.size(2));
  dn_i64 sc = out.stride(0), sh = out.stride(1), sw = out.stride(2);
  void* pb = bgr.data_ptr();
  void* pt = table.data_ptr();
  void* po = out.data_ptr();
  void* args[] = {&pb, &pt, &p, &h, &w, &sc, &sh, &sw, &po};
  launch(out.scalar_type() == at::kHalf ? m.pre_f16 : m.pre_f32,
         dim3(blocks_for(static_cast<int64_t>(3) * h * w, 256)), dim3(256), 0, args, "dn_preprocess");
}

}  // namespace dn::cuda
