/** Accelerator types for `acceleratorType`, as Ray names them (`ray.util.accelerators`). */
export const NVIDIA_TESLA_V100 = "V100";
export const NVIDIA_TESLA_P100 = "P100";
export const NVIDIA_TESLA_T4 = "T4";
export const NVIDIA_TESLA_P4 = "P4";
export const NVIDIA_TESLA_K80 = "K80";
export const NVIDIA_TESLA_A10G = "A10G";
export const NVIDIA_L4 = "L4";
export const NVIDIA_A100 = "A100";
export const NVIDIA_H100 = "H100";
export const NVIDIA_H200 = "H200";
