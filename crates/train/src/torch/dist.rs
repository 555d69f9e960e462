//! c10d through the C++ shim: a rendezvous store (`file://`, `tcp://`) and a process group
//! (Gloo here; NCCL from the CUDA shim, [`crate::torch::cuda::nccl_group`]) with the two
//! collectives data parallelism needs, all-reduce (sum) and broadcast.

use std::ffi::{c_char, c_int, c_void};

use tch::Tensor;
use torch_sys::C_tensor;

use crate::config::Rendezvous;
use crate::error::{Result, TrainError};
use crate::torch::ffi::{ErrBuf, cstring, tensor_ptrs};

unsafe extern "C" {
    fn dbt_store_new(
        init: *const c_char,
        rank: c_int,
        world_size: c_int,
        err: *mut c_char,
        n: usize,
    ) -> *mut c_void;
    fn dbt_store_free(s: *mut c_void);
    fn dbt_pg_new_gloo(
        store: *mut c_void,
        rank: c_int,
        world_size: c_int,
        err: *mut c_char,
        n: usize,
    ) -> *mut c_void;
    fn dbt_pg_free(pg: *mut c_void);
    fn dbt_pg_allreduce_sum(
        pg: *mut c_void,
        tensors: *const *mut C_tensor,
        num: c_int,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    fn dbt_pg_broadcast(
        pg: *mut c_void,
        tensors: *const *mut C_tensor,
        num: c_int,
        root: c_int,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
}

/// A c10d rendezvous store.
pub struct Store {
    pub(crate) raw: *mut c_void,
}

// SAFETY: c10d stores are thread-safe.
unsafe impl Send for Store {}

impl Store {
    pub fn new(init: &Rendezvous, rank: usize, world_size: usize) -> Result<Self> {
        let c = cstring(&init.to_string())?;
        let err = ErrBuf::new();
        // SAFETY: valid C string.
        let raw = unsafe {
            dbt_store_new(
                c.as_ptr(),
                rank as c_int,
                world_size as c_int,
                err.ptr(),
                err.len(),
            )
        };
        Ok(Store {
            raw: err
                .non_null(raw)
                .map_err(|e| TrainError::Distributed(format!("rendezvous {init}: {e}")))?,
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: freed once.
        unsafe { dbt_store_free(self.raw) }
    }
}

/// A c10d process group (Gloo here, NCCL from the CUDA shim).
pub struct ProcessGroup {
    pub(crate) raw: *mut c_void,
    _store: Store,
}

// SAFETY: c10d backends are thread-safe.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    pub fn gloo(store: Store, rank: usize, world_size: usize) -> Result<Self> {
        let err = ErrBuf::new();
        // SAFETY: the store outlives the group (held in `_store`).
        let raw = unsafe {
            dbt_pg_new_gloo(
                store.raw,
                rank as c_int,
                world_size as c_int,
                err.ptr(),
                err.len(),
            )
        };
        Ok(ProcessGroup {
            raw: err
                .non_null(raw)
                .map_err(|e| TrainError::Distributed(format!("gloo: {e}")))?,
            _store: store,
        })
    }

    pub(crate) fn from_raw(raw: *mut c_void, store: Store) -> Self {
        ProcessGroup { raw, _store: store }
    }

    /// Sums every tensor over the ranks, in place.
    pub fn allreduce_sum(&self, tensors: &[&Tensor]) -> Result<()> {
        let ptrs = tensor_ptrs(tensors);
        let err = ErrBuf::new();
        // SAFETY: the tensors are borrowed for the call.
        err.check(unsafe {
            dbt_pg_allreduce_sum(
                self.raw,
                ptrs.as_ptr(),
                ptrs.len() as c_int,
                err.ptr(),
                err.len(),
            )
        })
        .map_err(|e| TrainError::Distributed(format!("all-reduce: {e}")))
    }

    /// Copies rank `root`'s tensors into every rank's, in place.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        let ptrs = tensor_ptrs(tensors);
        let err = ErrBuf::new();
        // SAFETY: the tensors are borrowed for the call.
        err.check(unsafe {
            dbt_pg_broadcast(
                self.raw,
                ptrs.as_ptr(),
                ptrs.len() as c_int,
                root as c_int,
                err.ptr(),
                err.len(),
            )
        })
        .map_err(|e| TrainError::Distributed(format!("broadcast: {e}")))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: freed once, before the store.
        unsafe { dbt_pg_free(self.raw) }
    }
}
