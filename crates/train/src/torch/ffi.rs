//! Safe wrappers over the C++ shim (`shim.cpp`): the scripted module, the optimiser with its
//! loss scaler and global switches (c10d is in [`crate::torch::dist`]). Every call turns a C++ exception into
//! [`TrainError::Torch`]; tensors cross as `at::Tensor*` handles that tch owns afterwards.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::Path;

use tch::Tensor;
use torch_sys::C_tensor;

use crate::error::{Result, TrainError};

type TensorCallback = extern "C" fn(*mut c_void, *const c_char, *mut C_tensor, c_int);
type LossCallback = extern "C" fn(*mut c_void, *const c_char, *mut C_tensor);
type BytesCallback = extern "C" fn(*mut c_void, *const c_char, usize);

unsafe extern "C" {
    fn dbt_module_load(path: *const c_char, err: *mut c_char, n: usize) -> *mut c_void;
    fn dbt_module_free(m: *mut c_void);
    fn dbt_module_train(m: *mut c_void, on: c_int, err: *mut c_char, n: usize) -> c_int;
    fn dbt_module_to(
        m: *mut c_void,
        device_type: c_int,
        index: c_int,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    fn dbt_module_parameters(
        m: *mut c_void,
        ctx: *mut c_void,
        cb: TensorCallback,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    fn dbt_module_buffers(
        m: *mut c_void,
        ctx: *mut c_void,
        cb: TensorCallback,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn dbt_module_forward(
        m: *mut c_void,
        images: *const *mut C_tensor,
        num_images: c_int,
        keys: *const *const c_char,
        values: *const *mut C_tensor,
        counts: *const c_int,
        device_type: c_int,
        autocast_dtype: c_int,
        ctx: *mut c_void,
        cb: LossCallback,
        total: *mut *mut C_tensor,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    fn dbt_module_save(
        m: *mut c_void,
        ctx: *mut c_void,
        cb: BytesCallback,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    fn dbt_set_tf32(matmul: c_int, cudnn: c_int);
    fn dbt_get_tf32(matmul: *mut c_int, cudnn: *mut c_int);
    fn dbt_set_deterministic(on: c_int, err: *mut c_char, n: usize) -> c_int;
    fn dbt_opt_new(
        params: *const *mut C_tensor,
        num: c_int,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        err: *mut c_char,
        n: usize,
    ) -> *mut c_void;
    fn dbt_opt_free(o: *mut c_void);
    #[allow(clippy::too_many_arguments)]
    fn dbt_opt_enable_scaler(
        o: *mut c_void,
        device_type: c_int,
        index: c_int,
        init_scale: f64,
        growth: f64,
        backoff: f64,
        interval: i64,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    fn dbt_opt_backward(o: *mut c_void, loss: *mut C_tensor, err: *mut c_char, n: usize) -> c_int;
    fn dbt_opt_grads(
        o: *mut c_void,
        ctx: *mut c_void,
        cb: TensorCallback,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    fn dbt_opt_step(
        o: *mut c_void,
        lr: f64,
        found_inf: *mut c_int,
        scale_used: *mut f64,
        err: *mut c_char,
        n: usize,
    ) -> c_int;
    fn dbt_opt_scale(o: *mut c_void) -> f64;
}

/// A buffer the shim writes its error message into (through a raw pointer, hence the cell).
pub(crate) struct ErrBuf(std::cell::UnsafeCell<[c_char; 2048]>);

impl ErrBuf {
    pub(crate) fn new() -> Self {
        ErrBuf(std::cell::UnsafeCell::new([0; 2048]))
    }
    pub(crate) fn ptr(&self) -> *mut c_char {
        self.0.get().cast()
    }
    pub(crate) fn len(&self) -> usize {
        2048
    }
    pub(crate) fn message(&self) -> String {
        // SAFETY: the shim NUL-terminates what it writes (snprintf); the buffer starts zeroed,
        // and no call that writes to it is running.
        unsafe { CStr::from_ptr(self.0.get().cast::<c_char>()) }
            .to_string_lossy()
            .into_owned()
    }
    pub(crate) fn check(&self, status: c_int) -> Result<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(TrainError::Torch(self.message()))
        }
    }
    pub(crate) fn non_null(&self, p: *mut c_void) -> Result<*mut c_void> {
        if p.is_null() {
            Err(TrainError::Torch(self.message()))
        } else {
            Ok(p)
        }
    }
}

pub(crate) fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| TrainError::Config(format!("{s:?} contains a NUL byte")))
}

fn path_cstring(p: &Path) -> Result<CString> {
    cstring(&p.to_string_lossy())
}

/// Collects (name, tensor, requires_grad) from a shim callback.
/// The shim's functions that list a module's named tensors (`dbt_module_parameters`,
/// `dbt_module_buffers`).
type ListTensors =
    unsafe extern "C" fn(*mut c_void, *mut c_void, TensorCallback, *mut c_char, usize) -> c_int;

extern "C" fn collect_tensor(
    ctx: *mut c_void,
    name: *const c_char,
    t: *mut C_tensor,
    requires_grad: c_int,
) {
    // SAFETY: `ctx` is the Vec passed by the caller below; `name` is NUL-terminated; `t` is a
    // new at::Tensor the shim allocated for us to own.
    unsafe {
        let out = &mut *(ctx as *mut Vec<(String, Tensor, bool)>);
        let name = CStr::from_ptr(name).to_string_lossy().into_owned();
        out.push((name, Tensor::from_ptr(t), requires_grad != 0));
    }
}

extern "C" fn collect_loss(ctx: *mut c_void, name: *const c_char, t: *mut C_tensor) {
    collect_tensor(ctx, name, t, 0)
}

pub(crate) fn tensor_ptrs(tensors: &[&Tensor]) -> Vec<*mut C_tensor> {
    tensors
        .iter()
        .map(|t| t.as_ptr() as *mut C_tensor)
        .collect()
}

/// The device a call targets: (0, _) for the CPU, (1, index) for CUDA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceCode(pub c_int, pub c_int);

impl DeviceCode {
    pub(crate) fn of(device: tch::Device) -> Self {
        match device {
            tch::Device::Cuda(i) => DeviceCode(1, i as c_int),
            _ => DeviceCode(0, 0),
        }
    }
}

/// A scripted torchvision detector (`torch::jit::Module`).
pub struct Module {
    raw: *mut c_void,
}

// SAFETY: a torch::jit::Module may move between threads; the trainer uses it from one at a time.
unsafe impl Send for Module {}

impl Module {
    pub fn load(path: &Path) -> Result<Self> {
        let c = path_cstring(path)?;
        let err = ErrBuf::new();
        // SAFETY: valid C string; the shim catches every exception.
        let raw = unsafe { dbt_module_load(c.as_ptr(), err.ptr(), err.len()) };
        let raw = err.non_null(raw).map_err(|e| TrainError::Model {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Module { raw })
    }

    pub fn set_training(&mut self, on: bool) -> Result<()> {
        let err = ErrBuf::new();
        // SAFETY: `raw` is a live module.
        err.check(unsafe { dbt_module_train(self.raw, on as c_int, err.ptr(), err.len()) })
    }

    pub fn to_device(&mut self, device: tch::Device) -> Result<()> {
        let d = DeviceCode::of(device);
        let err = ErrBuf::new();
        // SAFETY: `raw` is a live module.
        err.check(unsafe { dbt_module_to(self.raw, d.0, d.1, err.ptr(), err.len()) })
    }

    /// (name, parameter, requires_grad) in `model.parameters()` order.
    pub fn parameters(&self) -> Result<Vec<(String, Tensor, bool)>> {
        self.named_tensors(dbt_module_parameters)
    }

    /// (name, buffer) in `model.buffers()` order.
    pub fn buffers(&self) -> Result<Vec<(String, Tensor)>> {
        let buffers = self.named_tensors(dbt_module_buffers)?;
        Ok(buffers.into_iter().map(|(n, t, _)| (n, t)).collect())
    }

    /// The tensors one of the shim's listing functions reports, through [`collect_tensor`].
    fn named_tensors(&self, list: ListTensors) -> Result<Vec<(String, Tensor, bool)>> {
        let mut out: Vec<(String, Tensor, bool)> = Vec::new();
        let err = ErrBuf::new();
        // SAFETY: `raw` is a live module; the callback casts ctx back to this Vec, alive for the
        // call.
        let status = unsafe {
            list(
                self.raw,
                &mut out as *mut _ as *mut c_void,
                collect_tensor,
                err.ptr(),
                err.len(),
            )
        };
        err.check(status)?;
        Ok(out)
    }

    /// `forward(images, targets)` under autocast (`autocast`: a c10::ScalarType code on
    /// `device`), returning the losses in the model's order and their sum.
    pub fn forward(
        &self,
        images: &[Tensor],
        targets: &[Vec<(&'static str, Tensor)>],
        device: tch::Device,
        autocast: Option<tch::Kind>,
    ) -> Result<(Vec<(String, Tensor)>, Tensor)> {
        let image_ptrs = tensor_ptrs(&images.iter().collect::<Vec<_>>());
        let mut keys: Vec<CString> = Vec::new();
        let mut values: Vec<*mut C_tensor> = Vec::new();
        let mut counts: Vec<c_int> = Vec::new();
        for target in targets {
            counts.push(target.len() as c_int);
            for (k, v) in target {
                keys.push(cstring(k)?);
                values.push(v.as_ptr() as *mut C_tensor);
            }
        }
        let key_ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr()).collect();
        let mut losses: Vec<(String, Tensor, bool)> = Vec::new();
        let mut total: *mut C_tensor = std::ptr::null_mut();
        let err = ErrBuf::new();
        let d = DeviceCode::of(device);
        let dtype = autocast.map_or(-1, scalar_type_code);
        // SAFETY: every pointer array lives until the call returns; tensors are borrowed.
        let status = unsafe {
            dbt_module_forward(
                self.raw,
                image_ptrs.as_ptr(),
                image_ptrs.len() as c_int,
                key_ptrs.as_ptr(),
                values.as_ptr(),
                counts.as_ptr(),
                d.0,
                dtype,
                &mut losses as *mut _ as *mut c_void,
                collect_loss,
                &mut total,
                err.ptr(),
                err.len(),
            )
        };
        err.check(status)?;
        // SAFETY: on success the shim set `total` to a new tensor we own.
        let total = unsafe { Tensor::from_ptr(total) };
        Ok((losses.into_iter().map(|(n, t, _)| (n, t)).collect(), total))
    }

    /// The module (in eval mode) as TorchScript's archive bytes (`torch.jit.save`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        extern "C" fn collect(ctx: *mut c_void, data: *const c_char, len: usize) {
            // SAFETY: `ctx` is the Vec below; the shim passes `len` readable bytes.
            unsafe {
                let out = &mut *(ctx as *mut Vec<u8>);
                out.extend_from_slice(std::slice::from_raw_parts(data as *const u8, len));
            }
        }
        let mut bytes: Vec<u8> = Vec::new();
        let err = ErrBuf::new();
        // SAFETY: `raw` is live; the callback only runs during the call, while `bytes` lives.
        err.check(unsafe {
            dbt_module_save(
                self.raw,
                &mut bytes as *mut Vec<u8> as *mut c_void,
                collect,
                err.ptr(),
                err.len(),
            )
        })?;
        Ok(bytes)
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: `raw` came from dbt_module_load and is freed once.
        unsafe { dbt_module_free(self.raw) }
    }
}

/// c10::ScalarType's code for the autocast dtypes.
fn scalar_type_code(kind: tch::Kind) -> c_int {
    match kind {
        tch::Kind::Half => 5,
        tch::Kind::BFloat16 => 15,
        _ => 6,
    }
}

/// `torch.backends.cuda.matmul.allow_tf32` and `torch.backends.cudnn.allow_tf32`.
pub fn set_tf32(matmul: bool, cudnn: bool) {
    // SAFETY: plain setters on libtorch's global context.
    unsafe { dbt_set_tf32(matmul as c_int, cudnn as c_int) }
}

/// (matmul, cudnn) TF32 flags now.
pub fn tf32() -> (bool, bool) {
    let (mut m, mut c) = (0, 0);
    // SAFETY: the shim writes two ints.
    unsafe { dbt_get_tf32(&mut m, &mut c) };
    (m != 0, c != 0)
}

/// `torch.use_deterministic_algorithms(on)`.
pub fn set_deterministic(on: bool) -> Result<()> {
    let err = ErrBuf::new();
    // SAFETY: setter on libtorch's global context.
    err.check(unsafe { dbt_set_deterministic(on as c_int, err.ptr(), err.len()) })
}

/// torch.optim.SGD (foreach) with an optional torch.amp.GradScaler.
pub struct Optimizer {
    raw: *mut c_void,
}

// SAFETY: used from one thread at a time.
unsafe impl Send for Optimizer {}

/// torch.amp.GradScaler's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalerSettings {
    pub init_scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: i64,
}

impl Default for ScalerSettings {
    /// torch.amp.GradScaler's defaults: 2**16, 2.0, 0.5, 2000.
    fn default() -> Self {
        ScalerSettings {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

impl Optimizer {
    pub fn new(params: &[&Tensor], momentum: f64, weight_decay: f64) -> Result<Self> {
        let ptrs = tensor_ptrs(params);
        let err = ErrBuf::new();
        // SAFETY: the shim copies the tensor handles.
        let raw = unsafe {
            dbt_opt_new(
                ptrs.as_ptr(),
                ptrs.len() as c_int,
                momentum,
                0.0,
                weight_decay,
                err.ptr(),
                err.len(),
            )
        };
        Ok(Optimizer {
            raw: err.non_null(raw)?,
        })
    }

    pub fn enable_scaler(&mut self, device: tch::Device, s: ScalerSettings) -> Result<()> {
        let d = DeviceCode::of(device);
        let err = ErrBuf::new();
        // SAFETY: `raw` is live.
        err.check(unsafe {
            dbt_opt_enable_scaler(
                self.raw,
                d.0,
                d.1,
                s.init_scale,
                s.growth_factor,
                s.backoff_factor,
                s.growth_interval,
                err.ptr(),
                err.len(),
            )
        })
    }

    /// zero_grad(set_to_none) then backward of `loss` (scaled when the scaler is on).
    pub fn backward(&mut self, loss: &Tensor) -> Result<()> {
        let err = ErrBuf::new();
        // SAFETY: `loss` is borrowed for the call.
        err.check(unsafe {
            dbt_opt_backward(
                self.raw,
                loss.as_ptr() as *mut C_tensor,
                err.ptr(),
                err.len(),
            )
        })
    }

    /// The gradients that exist, in parameter order.
    pub fn grads(&self) -> Result<Vec<Tensor>> {
        let mut out: Vec<(String, Tensor, bool)> = Vec::new();
        let err = ErrBuf::new();
        // SAFETY: as Module::parameters.
        let status = unsafe {
            dbt_opt_grads(
                self.raw,
                &mut out as *mut _ as *mut c_void,
                collect_tensor,
                err.ptr(),
                err.len(),
            )
        };
        err.check(status)?;
        Ok(out.into_iter().map(|(_, t, _)| t).collect())
    }

    /// One optimiser step at `lr`; returns (skipped for inf/NaN, the scale the step used).
    pub fn step(&mut self, lr: f64) -> Result<(bool, f64)> {
        let (mut found, mut scale) = (0, 1.0);
        let err = ErrBuf::new();
        // SAFETY: `raw` is live; the shim writes the two outputs.
        err.check(unsafe {
            dbt_opt_step(self.raw, lr, &mut found, &mut scale, err.ptr(), err.len())
        })?;
        Ok((found != 0, scale))
    }

    /// The scale of the next step (1 without the scaler).
    pub fn scale(&self) -> f64 {
        // SAFETY: `raw` is live.
        unsafe { dbt_opt_scale(self.raw) }
    }
}

impl Drop for Optimizer {
    fn drop(&mut self) {
        // SAFETY: freed once.
        unsafe { dbt_opt_free(self.raw) }
    }
}
