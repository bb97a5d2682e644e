#include "tools/make_model.h"

#include <cstring>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "core/mapped_file.h"
#include "core/quant.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/hf_config.h"
#include "formats/model_presets.h"
#include "formats/safetensors.h"
#include "tools/quantize.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;

class MakeModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("seekserve_make_model_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string make(const std::string& preset, const std::string& format, const std::string& dtype,
                   uint64_t seed = 0, const std::string& name = "") {
    MakeModelOptions o;
    o.preset = preset;
    o.format = format;
    o.dtype = dtype;
    o.seed = seed;
    o.out = (dir_ / (name.empty() ? preset + "-" + dtype + "." + format : name)).string();
    Status s = make_model(o);
    EXPECT_TRUE(s.ok()) << s.message();
    return o.out;
  }

  fs::path dir_;
};

std::vector<float> to_f32(DType dtype, std::span<const uint8_t> bytes, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  dequantize_row(dtype, bytes.data(), v.data(), n);
  return v;
}

// The GGUF form holds exactly the HF form's numbers, transformed as llama.cpp lays them out.
void expect_same_model(const std::string& hf_dir, const std::string& gguf_path) {
  auto st = SafetensorsModel::open(hf_dir);
  ASSERT_TRUE(st.ok()) << st.status().message();
  auto gguf = GgufFile::open(gguf_path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto config = load_hf_config(hf_dir + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto gguf_config = model_config_from_gguf(*gguf);
  ASSERT_TRUE(gguf_config.ok()) << gguf_config.status().message();
  EXPECT_EQ(gguf_config->arch, config->arch);
  int checked = 0;
  for (const GgufTensorPlan& plan : gguf_tensor_plan(*config, MlaGgufLayout::kSplit)) {
    const GgufTensorInfo* g = gguf->find_tensor(plan.name);
    ASSERT_NE(g, nullptr) << plan.name;
    EXPECT_EQ(g->dims, plan.dims) << plan.name;
    std::vector<std::vector<float>> sources;
    for (const std::string& name : plan.sources) {
      const SafetensorsTensor* t = st->find(name);
      ASSERT_NE(t, nullptr) << name;
      int64_t n = 1;
      for (int64_t d : t->shape) n *= d;
      sources.push_back(to_f32(t->dtype, t->data, n));
    }
    const std::vector<float> want = apply_gguf_transform(*config, plan, sources);
    const std::vector<float> got =
        to_f32(g->dtype, {g->data, g->n_bytes}, static_cast<int64_t>(g->n_elements));
    ASSERT_EQ(got.size(), want.size()) << plan.name;
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << plan.name << "[" << i << "]";
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(gguf->tensors().size()));
}

TEST_F(MakeModelTest, HfAndGgufHoldTheSameNumbersForEveryTinyPreset) {
  for (const char* preset : {"tiny-v3", "tiny-v2-lite", "tiny-qwen2", "tiny-llama"}) {
    SCOPED_TRACE(preset);
    const std::string hf = make(preset, "hf", "bf16");
    const std::string gguf = make(preset, "gguf", "bf16");
    expect_same_model(hf, gguf);
    // The folder carries what HF-style loaders expect.
    EXPECT_TRUE(fs::exists(hf + "/config.json"));
    EXPECT_TRUE(fs::exists(hf + "/tokenizer.json"));
    EXPECT_TRUE(fs::exists(hf + "/tokenizer_config.json"));
    auto g = GgufFile::open(gguf);
    ASSERT_TRUE(g.ok());
    auto tok = tokenizer_data_from_gguf(*g);
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    EXPECT_EQ(tok->pre, "deepseek-v3");
    EXPECT_EQ(static_cast<int64_t>(tok->tokens.size()),
              find_model_preset(preset)->config.vocab_size);
    EXPECT_EQ(tok->tokens[0], "<｜begin▁of▁sentence｜>");
    EXPECT_EQ(tok->token_types.back(), TokenType::kUnused);
  }
}

TEST_F(MakeModelTest, SameSeedSameBytesOtherSeedOtherWeights) {
  const std::string a = make("tiny-qwen2", "gguf", "f32", 7, "a.gguf");
  const std::string b = make("tiny-qwen2", "gguf", "f32", 7, "b.gguf");
  const std::string c = make("tiny-qwen2", "gguf", "f32", 8, "c.gguf");
  auto fa = MappedFile::open(a), fb = MappedFile::open(b), fc = MappedFile::open(c);
  ASSERT_TRUE(fa.ok() && fb.ok() && fc.ok());
  ASSERT_EQ(fa->size(), fb->size());
  EXPECT_TRUE(std::equal(fa->data(), fa->data() + fa->size(), fb->data()));
  ASSERT_EQ(fa->size(), fc->size());
  EXPECT_FALSE(std::equal(fa->data(), fa->data() + fa->size(), fc->data()));
}

TEST_F(MakeModelTest, HfTensorsMatchTheConfigShapes) {
  const std::string hf = make("tiny-v3", "hf", "f32");
  auto st = SafetensorsModel::open(hf);
  ASSERT_TRUE(st.ok());
  const ModelConfig c = find_model_preset("tiny-v3")->config;
  const auto specs = hf_tensor_specs(c);
  EXPECT_EQ(st->tensors().size(), specs.size());
  for (const TensorSpec& s : specs) {
    const SafetensorsTensor* t = st->find(s.name);
    ASSERT_NE(t, nullptr) << s.name;
    EXPECT_EQ(t->shape, s.shape) << s.name;
  }
  const SafetensorsTensor* bias = st->find("model.layers.1.mlp.gate.e_score_correction_bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->dtype, DType::kF32);
  EXPECT_EQ(st->find("model.layers.0.mlp.gate.weight"), nullptr);  // layer 0 is dense
  EXPECT_NE(st->find("model.layers.2.mlp.experts.15.down_proj.weight"), nullptr);
}

TEST_F(MakeModelTest, LayersShortensAModel) {
  MakeModelOptions o;
  o.preset = "tiny-v2-lite";
  o.out = (dir_ / "short").string();
  o.layers = 2;
  ASSERT_TRUE(make_model(o).ok());
  auto c = load_hf_config(o.out + "/config.json");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->num_hidden_layers, 2);
}

// --dtype q8_0/q4_0 writes, tensor by tensor, what quantize makes of the bf16 form: same types,
// shapes and bytes (so a large quantised model never needs its bf16 source on disk).
TEST_F(MakeModelTest, QuantizedGgufEqualsQuantizeOfTheBf16Form) {
  for (const auto& [preset, dtype] :
       {std::pair<std::string, std::string>{"tiny-v2-lite", "q8_0"}, {"tiny-qwen2", "q4_0"}}) {
    SCOPED_TRACE(preset + " " + dtype);
    const std::string bf16 = make(preset, "gguf", "bf16");
    const std::string direct = make(preset, "gguf", dtype);
    QuantizeOptions q;
    q.in = bf16;
    q.out = (dir_ / (preset + "-via-quantize.gguf")).string();
    q.dtype = dtype;
    q.quiet = true;
    const Status s = quantize_model(q);
    ASSERT_TRUE(s.ok()) << s.message();
    auto a = GgufFile::open(direct);
    auto b = GgufFile::open(q.out);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    int quantized = 0;
    for (const GgufTensorInfo& t : b->tensors()) {
      const GgufTensorInfo* d = a->find_tensor(t.name);
      ASSERT_NE(d, nullptr) << t.name;
      EXPECT_EQ(d->dtype, t.dtype) << t.name;
      EXPECT_EQ(d->dims, t.dims) << t.name;
      ASSERT_EQ(d->n_bytes, t.n_bytes) << t.name;
      EXPECT_EQ(0, std::memcmp(d->data, t.data, t.n_bytes)) << t.name;
      quantized += t.dtype == *dtype_from_name(dtype);
    }
    EXPECT_GT(quantized, 0);
  }
}

TEST_F(MakeModelTest, BadOptionsAreClearErrors) {
  MakeModelOptions o;
  o.out = (dir_ / "x").string();
  o.preset = "tiny-gpt";
  Status s = make_model(o);
  EXPECT_TRUE(s.is_bad_input());
  EXPECT_NE(s.message().find("tiny-v3"), std::string::npos);  // lists the known presets
  o.preset = "deepseek-v3";
  EXPECT_TRUE(make_model(o).is_bad_input());
  o.preset = "tiny-v3";
  o.dtype = "q8_0";  // a GGUF type; the default format is hf
  s = make_model(o);
  EXPECT_TRUE(s.is_bad_input());
  EXPECT_NE(s.message().find("--format gguf"), std::string::npos) << s.message();
  o.dtype = "fp8";
  EXPECT_NE(make_model(o).message().find("--dtype"), std::string::npos);
  o.dtype = "f32";
  o.layers = 99;
  EXPECT_NE(make_model(o).message().find("--layers"), std::string::npos);
  o.layers = 0;
  o.format = "onnx";
  EXPECT_NE(make_model(o).message().find("--format"), std::string::npos);
}

}  // namespace
}  // namespace seekserve
