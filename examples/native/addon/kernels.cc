// A Node-API addon with the AssemblyScript kernels' functions: fib and a dot product that reads
// its Float64Arrays in place (no copy: a typed array's memory is handed to C++ as it is).
#include <napi.h>

static Napi::Value Fib(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  double a = 0, b = 1;
  for (int i = 0; i < n; i++) {
    double t = a + b;
    a = b;
    b = t;
  }
  return Napi::Number::New(info.Env(), a);
}

static Napi::Value Dot(const Napi::CallbackInfo& info) {
  auto a = info[0].As<Napi::Float64Array>();
  auto b = info[1].As<Napi::Float64Array>();
  if (a.ElementLength() != b.ElementLength()) {
    Napi::TypeError::New(info.Env(), "dot: the arrays differ in length").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  double sum = 0;
  for (size_t i = 0; i < a.ElementLength(); i++) sum += a[i] * b[i];
  return Napi::Number::New(info.Env(), sum);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("fib", Napi::Function::New(env, Fib, "fib"));
  exports.Set("dot", Napi::Function::New(env, Dot, "dot"));
  return exports;
}

NODE_API_MODULE(kernels, Init)
