//! Conversion between detbench's engine-neutral [`Value`]s and TorchScript's `IValue`s.
//!
//! Inputs go to the model's device (and to half precision for fp16 float inputs); outputs come
//! back to host memory, half-precision floats widened to `f32`, integers to `i64`, booleans to
//! `u8`, and Python scalars to 0-dimensional tensors.

use tch::{Device as TchDevice, IValue, Kind};

use crate::{BackendError, DType, Tensor, TensorData, Value};

/// Turns one input value into an `IValue` on `device`; `half` converts float tensors to fp16.
/// `path` names the value in error messages (`images[2]`).
pub fn to_ivalue(
    value: Value,
    device: TchDevice,
    half: bool,
    path: &str,
) -> Result<IValue, BackendError> {
    Ok(match value {
        Value::Tensor(tensor) => IValue::Tensor(to_tch(tensor, device, half, path)?),
        Value::List(items) => {
            if items.iter().all(|v| matches!(v, Value::Tensor(_))) {
                let tensors = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::Tensor(t) => to_tch(t, device, half, &format!("{path}[{i}]")),
                        _ => unreachable!("checked above: every item is a tensor"),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                IValue::TensorList(tensors)
            } else {
                IValue::GenericList(convert_all(items, device, half, path)?)
            }
        }
        Value::Tuple(items) => IValue::Tuple(convert_all(items, device, half, path)?),
        Value::Dict(entries) => IValue::GenericDict(
            entries
                .into_iter()
                .map(|(key, v)| {
                    let inner = format!("{path}[{key:?}]");
                    Ok((IValue::String(key), to_ivalue(v, device, half, &inner)?))
                })
                .collect::<Result<Vec<_>, BackendError>>()?,
        ),
    })
}

fn convert_all(
    items: Vec<Value>,
    device: TchDevice,
    half: bool,
    path: &str,
) -> Result<Vec<IValue>, BackendError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| to_ivalue(v, device, half, &format!("{path}[{i}]")))
        .collect()
}

/// A host tensor copied to `device` (fp16 when `half` and it holds floats).
fn to_tch(
    tensor: Tensor,
    device: TchDevice,
    half: bool,
    path: &str,
) -> Result<tch::Tensor, BackendError> {
    let expected = tensor.shape.iter().product::<usize>();
    let actual = match &tensor.data {
        TensorData::F32(v) => v.len(),
        TensorData::I64(v) => v.len(),
        TensorData::U8(v) => v.len(),
    };
    if expected != actual {
        return Err(BackendError::BadInput {
            name: path.to_owned(),
            reason: format!(
                "shape {:?} needs {expected} elements, the data has {actual}",
                tensor.shape
            ),
        });
    }
    let convert = |e: tch::TchError| BackendError::BadInput {
        name: path.to_owned(),
        reason: e.to_string(),
    };
    let shape: Vec<i64> = tensor.shape.iter().map(|&d| d as i64).collect();
    let on_device = if device.is_cuda() {
        // Straight from our buffer to the device, as `torch.from_numpy(a).to("cuda")`: a tensor
        // viewing the data (no host copy), then a synchronous host-to-device copy, after which
        // the view is dropped; the buffer outlives both.
        let (pointer, kind) = match &tensor.data {
            TensorData::F32(v) => (v.as_ptr() as *const u8, Kind::Float),
            TensorData::I64(v) => (v.as_ptr() as *const u8, Kind::Int64),
            TensorData::U8(v) => (v.as_ptr(), Kind::Uint8),
        };
        // SAFETY: `pointer` addresses `expected` elements of `kind` (checked above), contiguous,
        // alive and unmodified until this function returns; the view is only read by the copy.
        let view = unsafe { tch::Tensor::f_from_blob(pointer, &shape, &[], kind, TchDevice::Cpu) }
            .map_err(convert)?;
        view.f_to_device(device).map_err(convert)?
    } else {
        // On the CPU the model may keep or return its input (D2Go returns it), so it gets a
        // tensor of its own.
        match &tensor.data {
            TensorData::F32(v) => tch::Tensor::f_from_slice(v),
            TensorData::I64(v) => tch::Tensor::f_from_slice(v),
            TensorData::U8(v) => tch::Tensor::f_from_slice(v),
        }
        .and_then(|t| t.f_reshape(&shape))
        .map_err(convert)?
    };
    if half && tensor.dtype() == DType::F32 {
        on_device.f_to_kind(Kind::Half).map_err(convert)
    } else {
        Ok(on_device)
    }
}

/// Turns one output `IValue` into a host [`Value`]. `path` names it in error messages.
pub fn from_ivalue(value: IValue, path: &str) -> Result<Value, BackendError> {
    Ok(match value {
        IValue::Tensor(t) => Value::Tensor(from_tch(&t, path)?),
        IValue::Double(x) => Value::Tensor(Tensor::f32(vec![], vec![x as f32])),
        IValue::Int(x) => Value::Tensor(Tensor {
            shape: vec![],
            data: TensorData::I64(vec![x]),
        }),
        IValue::Bool(b) => Value::Tensor(Tensor {
            shape: vec![],
            data: TensorData::U8(vec![b as u8]),
        }),
        IValue::Tuple(items) => Value::Tuple(from_all(items, path)?),
        IValue::GenericList(items) => Value::List(from_all(items, path)?),
        IValue::TensorList(tensors) => Value::List(
            tensors
                .iter()
                .enumerate()
                .map(|(i, t)| from_tch(t, &format!("{path}[{i}]")).map(Value::Tensor))
                .collect::<Result<_, _>>()?,
        ),
        IValue::IntList(v) => Value::Tensor(Tensor {
            shape: vec![v.len()],
            data: TensorData::I64(v),
        }),
        IValue::DoubleList(v) => Value::Tensor(Tensor::f32(
            vec![v.len()],
            v.into_iter().map(|x| x as f32).collect(),
        )),
        IValue::BoolList(v) => Value::Tensor(Tensor {
            shape: vec![v.len()],
            data: TensorData::U8(v.into_iter().map(u8::from).collect()),
        }),
        IValue::GenericDict(entries) => Value::Dict(
            entries
                .into_iter()
                .map(|(key, v)| {
                    let key = match key {
                        IValue::String(s) => s,
                        IValue::Int(i) => i.to_string(),
                        other => {
                            return Err(BackendError::Run(format!(
                                "output {path}: dict key of unsupported type {}",
                                ivalue_kind(&other)
                            )));
                        }
                    };
                    let inner = format!("{path}[{key:?}]");
                    Ok((key, from_ivalue(v, &inner)?))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(BackendError::Run(format!(
                "output {path} is a TorchScript {}, which detbench does not convert",
                ivalue_kind(&other)
            )));
        }
    })
}

fn from_all(items: Vec<IValue>, path: &str) -> Result<Vec<Value>, BackendError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| from_ivalue(v, &format!("{path}[{i}]")))
        .collect()
}

/// A device tensor copied to host memory in detbench's element types: one `copy_` straight into
/// the returned vector (device-to-host and type conversion in one step, as `t.float().cpu()`).
fn from_tch(tensor: &tch::Tensor, path: &str) -> Result<Tensor, BackendError> {
    let convert = |e: tch::TchError| BackendError::Run(format!("output {path}: {e}"));
    let shape: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
    let data = match tensor.kind() {
        Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double => {
            TensorData::F32(copy_to_host::<f32>(tensor).map_err(convert)?)
        }
        Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 => {
            TensorData::I64(copy_to_host::<i64>(tensor).map_err(convert)?)
        }
        Kind::Uint8 | Kind::Bool => TensorData::U8(copy_to_host::<u8>(tensor).map_err(convert)?),
        other => {
            return Err(BackendError::Run(format!(
                "output {path} has element type {other:?}, which detbench does not convert"
            )));
        }
    };
    Ok(Tensor { shape, data })
}

/// The elements of `tensor`, converted to `T`'s own kind (`T::KIND`, so that the buffer and the
/// element type written into it cannot disagree), in a new vector filled by one `copy_` (no
/// zero-filling first: the copy writes every element).
fn copy_to_host<T: tch::kind::Element + Copy>(
    tensor: &tch::Tensor,
) -> Result<Vec<T>, tch::TchError> {
    let kind = T::KIND;
    let count = tensor.numel();
    let mut out: Vec<T> = Vec::with_capacity(count);
    if count == 0 {
        return Ok(out);
    }
    let flat = tensor.f_reshape([-1])?;
    // SAFETY: `out` has capacity for `count` contiguous elements of `kind` and outlives `view`,
    // which is dropped at the end of this block; nothing else aliases that memory. `copy_`
    // writes all `count` elements (same number of elements, checked by libtorch) before
    // `set_len` exposes them; on error the length stays 0.
    unsafe {
        let mut view = tch::Tensor::f_from_blob(
            out.as_mut_ptr() as *const u8,
            &[count as i64],
            &[1],
            kind,
            TchDevice::Cpu,
        )?;
        view.f_copy_(&flat)?;
        drop(view);
        out.set_len(count);
    }
    Ok(out)
}

fn ivalue_kind(value: &IValue) -> &'static str {
    match value {
        IValue::None => "None",
        IValue::Tensor(_) => "Tensor",
        IValue::Double(_) => "float",
        IValue::Int(_) => "int",
        IValue::Bool(_) => "bool",
        IValue::Tuple(_) => "tuple",
        IValue::IntList(_) => "List[int]",
        IValue::DoubleList(_) => "List[float]",
        IValue::BoolList(_) => "List[bool]",
        IValue::String(_) => "str",
        IValue::StringList(_) => "List[str]",
        IValue::TensorList(_) => "List[Tensor]",
        IValue::GenericList(_) => "list",
        IValue::GenericDict(_) => "dict",
        IValue::Object(_) => "object",
        IValue::Device(_) => "device",
        _ => "value of another kind",
    }
}
