{
  "targets": [{
    "target_name": "kernels",
    "sources": ["kernels.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"],
    "cflags_cc": ["-O3"]
  }]
}
