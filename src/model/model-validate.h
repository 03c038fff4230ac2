// The values of a model file, checked where they enter: a NaN or infinity in a norm, an embedding
// or a scale would otherwise surface much later as NaN logits. Structure (shapes, types) is
// validate_tensors' job (model-config.h); this runs after it passed.
//
// One check for every consumer: ModelWeights::load runs it on the non-ternary tensors (the ternary
// ones are checked by decode_ternary while they are packed: I2_S code 3, non-finite scales, values
// that are not ternary), and `bitnet inspect` runs it on all of them, so inspect calls a file valid
// exactly when the engine loads it.
#pragma once

#include <string>
#include <vector>

#include "core/thread-pool.h"
#include "formats/gguf.h"
#include "model/model-config.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::model {

enum class ValueCheck {
  NonTernary,  // norms, token_embd, output, .scale tensors
  All,         // and the ternary linears, decoded as the loader decodes them
};

// Problems found, each naming the file, the tensor and the first bad element ("tensor
// 'blk.0.attn_norm.weight': element 17 is NaN"); empty when every value is usable. Tensors that
// validate_tensors would reject are skipped. Parallel over tensors on pool (null: this thread).
std::vector<std::string> validate_tensor_values(const ModelConfig& config,
                                                const formats::GgufFile& file, ValueCheck which,
                                                ThreadPool* pool = nullptr);

// The tokenizer a model runs with: Tokenizer::from_gguf, then the check that it has exactly the
// model's vocabulary size. Throws std::invalid_argument naming the file.
Tokenizer load_model_tokenizer(const formats::GgufFile& file, const ModelConfig& config);

// The checks ModelWeights::load and inspect make, on a file just written by a converter: throws
// std::invalid_argument "<source>: the converted model would not load: <problems>" so that a
// checkpoint holding NaN or infinity fails at conversion, naming it, not at the first load.
void check_converted_model(const std::string& gguf_path, const std::string& source);

// Joins problems into one error message: "<path>: not a valid <arch> model: <first>; <second>; ...
// (and N more: `bitnet inspect <path>` lists them)". At most `shown` problems are spelled out.
std::string problems_message(const std::string& path, const std::string& what,
                             const std::vector<std::string>& problems, size_t shown = 3);

}  // namespace bitnet::model
