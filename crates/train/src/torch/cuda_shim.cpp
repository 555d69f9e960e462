// detbench-train's CUDA shim: the pieces that live in libtorch_cuda.so / libc10_cuda.so, which
// the binary must not link (it has to start on machines without CUDA). crates/train/build.rs
// compiles this file into a small shared library that the binary embeds and opens at run time,
// after crates/backends' runtime::ensure_cuda has loaded libtorch_cuda.so (RTLD_GLOBAL):
//
// * the CUDA caching allocator's statistics: `torch.cuda.max_memory_allocated()`,
//   `max_memory_reserved()` and `reset_peak_memory_stats()`;
// * ProcessGroupNCCL over a c10d store made by shim.cpp (`dbt_store_new`), for data parallelism
//   with one process per GPU.

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>

namespace {
void write_error(char* buffer, size_t length, const char* message) {
  if (buffer == nullptr || length == 0) return;
  std::snprintf(buffer, length, "%s", message);
}
}  // namespace

extern "C" {

// Peak bytes allocated and reserved on `device` since the start or the last reset.
int dbt_cuda_peak_memory(int device, uint64_t* allocated, uint64_t* reserved, char* err,
                         size_t n) {
  try {
    using c10::CachingDeviceAllocator::StatType;
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(
        static_cast<c10::DeviceIndex>(device));
    const auto all = static_cast<size_t>(StatType::AGGREGATE);
    *allocated = static_cast<uint64_t>(stats.allocated_bytes[all].peak);
    *reserved = static_cast<uint64_t>(stats.reserved_bytes[all].peak);
    return 0;
  } catch (const std::exception& e) {
    write_error(err, n, e.what());
    return 1;
  }
}

int dbt_cuda_reset_peak_memory(int device, char* err, size_t n) {
  try {
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 0;
  } catch (const std::exception& e) {
    write_error(err, n, e.what());
    return 1;
  }
}

// ProcessGroupNCCL over `store` (borrowed, a c10d::Store* from dbt_store_new) for this rank's
// current device; returns a released c10::intrusive_ptr<c10d::Backend>.
void* dbt_pg_new_nccl(void* store, int rank, int world_size, int device, char* err, size_t n) {
  try {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto s = c10::intrusive_ptr<c10d::Store>::unsafe_reclaim_from_nonowning(
        static_cast<c10d::Store*>(store));
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("detbench-nccl", s);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world_size, options);
    c10::intrusive_ptr<c10d::Backend> backend = pg;
    return backend.release();
  } catch (const std::exception& e) {
    write_error(err, n, e.what());
    return nullptr;
  }
}

}  // extern "C"
