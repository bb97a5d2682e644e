#include "model/kv_cache.h"

#include <gtest/gtest.h>

#include "formats/model_presets.h"

namespace seekserve {
namespace {

TEST(KvCache, MlaCachesOnlyTheLatentAndTheRopeKey) {
  const ModelConfig v3 = find_model_preset("deepseek-v3")->config;
  auto kv = KvCache::create(v3, 1, 1, DType::kBF16);
  ASSERT_TRUE(kv.ok()) << kv.status().message();
  EXPECT_EQ(kv->width(), 576);                        // 512 latent + 64 rope, all heads together
  EXPECT_EQ(kv->bytes_per_token(), 61u * 576u * 2u);  // not 61 x 128 heads x (192 + 128)
  const ModelConfig qwen = find_model_preset("r1-distill-qwen-7b")->config;
  auto gqa = KvCache::create(qwen, 1, 1, DType::kF32);
  ASSERT_TRUE(gqa.ok());
  EXPECT_EQ(gqa->width(), 2 * 4 * 128);  // K and V of 4 KV heads
}

TEST(KvCache, SlotsRoundTripInEveryStorageType) {
  const ModelConfig c = find_model_preset("tiny-v3")->config;
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF8E4M3}) {
    auto kv = KvCache::create(c, 4, 16, dt);
    ASSERT_TRUE(kv.ok());
    const std::vector<int32_t> table = {2, 0};  // positions 0..15 in block 2, 16..31 in block 0
    std::vector<float> in(static_cast<size_t>(kv->width())), out(in.size());
    for (int64_t pos : {0, 15, 16, 31}) {
      for (size_t i = 0; i < in.size(); ++i)
        in[i] = static_cast<float>(pos) * 0.25f - static_cast<float>(i) * 0.5f;
      kv->write(1, table, pos, in.data());
      kv->read(1, table, pos, 0, kv->width(), out.data());
      for (size_t i = 0; i < in.size(); ++i) {
        const float tol = dt == DType::kF32    ? 0.0f
                          : dt == DType::kBF16 ? std::abs(in[i]) / 128
                                               : std::abs(in[i]) / 8;
        ASSERT_NEAR(out[i], in[i], tol) << dtype_name(dt) << " pos " << pos << " [" << i << "]";
      }
      // A partial read starts at the requested column.
      kv->read(1, table, pos, 3, 2, out.data());
      EXPECT_NEAR(out[0], in[3], std::abs(in[3]) / 8 + 1e-6);
    }
  }
}

TEST(KvCache, RejectsBadSizesAndTypes) {
  const ModelConfig c = find_model_preset("tiny-qwen2")->config;
  EXPECT_EQ(KvCache::create(c, 0, 16, DType::kF32).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KvCache::create(c, 4, 16, DType::kQ8_0).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace seekserve
