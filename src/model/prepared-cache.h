// Prepared-model cache: the packed (kernel-ready) linears of a model, in a file that the next load
// maps and uses in place instead of decoding and repacking the model file.
//
// File layout (little-endian): a 4096-byte header page (magic "BNPREP", format version, layout,
// ISA, the source's identity, file size, checksums), then the entry table, then each entry's packed
// data and row scales, every section starting on a 4096-byte boundary. The header records the
// source model's absolute path, size and modification time (ns); any difference, a different
// format version, layout or ISA, a bad checksum (header, table or data) or a size that does not
// add up makes the cache stale or corrupt, and the loader rebuilds it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/mapped-file.h"
#include "kernels/ternary-matmul.h"

namespace bitnet::model {

inline constexpr uint32_t kPreparedFormatVersion = 1;

struct SourceIdentity {
  std::string path;  // absolute
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};
// Throws std::runtime_error naming the path when it cannot be stat'ed.
SourceIdentity identify_source(const std::string& path);

// <dir>/<model file name>.<hash of identity path>.<layout>.<isa>.bnprep
std::string prepared_cache_path(const std::string& dir, const SourceIdentity& source,
                                kernels::TernaryLayout layout, kernels::Isa isa);
// $BITNET_CACHE_DIR, else $XDG_CACHE_HOME/bitnet-cxx, else $HOME/.cache/bitnet-cxx.
std::string default_cache_dir();

struct PreparedMatrix {
  std::string name;
  const kernels::TernaryMatrixView* view;  // for writing
};

// Writes the cache to `path` (through path + ".tmp" and a rename; creates the directory).
// Throws std::runtime_error naming the path on any I/O failure, leaving nothing behind.
void write_prepared_cache(const std::string& path, const SourceIdentity& source,
                          kernels::TernaryLayout layout, kernels::Isa isa,
                          const std::vector<PreparedMatrix>& matrices);

struct PreparedCache {
  std::shared_ptr<formats::MappedFile> mapping;
  std::vector<std::pair<std::string, kernels::TernaryMatrixView>> matrices;  // views into mapping
};

// Maps and fully validates a cache. Returns nullopt, with the reason in *why, when the file is
// absent, stale or corrupt; never throws for a bad cache file.
std::optional<PreparedCache> open_prepared_cache(const std::string& path,
                                                 const SourceIdentity& source,
                                                 kernels::TernaryLayout layout, kernels::Isa isa,
                                                 std::string* why);

}  // namespace bitnet::model
