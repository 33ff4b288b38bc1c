// Micro-benchmarks of the index: name hashing, the merge diff of one
// directory against its stored range, a commit of 1,000 changes and a read
// of 1,000 changes from the feed. Sizes sweep 1k, 20k and 200k entries per
// directory. A failed call inside a timed loop is counted in the "failures"
// counter, never ignored.
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "index/index.h"

namespace dirindex {
namespace {

std::string ScratchIndexDir() {
  char pattern[] = "/tmp/dirindex-bench-XXXXXX";
  return mkdtemp(pattern);
}

std::vector<ListedEntry> MakeEntries(int64_t count, int64_t stamp) {
  std::vector<ListedEntry> entries(count);
  for (int64_t i = 0; i < count; ++i) {
    ListedEntry& entry = entries[i];
    entry.name = "file_" + std::to_string(i) + ".xml";
    entry.type = EntryType::kFile;
    entry.known = kKnownSize | kKnownMtime | kKnownInode | kKnownMode;
    entry.mode = 0100644;
    entry.size = static_cast<uint64_t>(i);
    entry.mtime_ns = stamp;
    entry.inode = static_cast<uint64_t>(i + 1);
  }
  return entries;
}

// IndexFixture owns a scratch index holding one root with one directory.
struct IndexFixture {
  explicit IndexFixture(uint64_t batch = 1'000'000) {
    dir = ScratchIndexDir();
    IndexOptions options;
    options.dir = dir;
    options.durable = false;
    options.batch_changes = batch;
    index = std::move(*Index::Open(options));
    root = *index->AddRoot("bench", "file:///bench");
  }
  ~IndexFixture() {
    index.reset();
    std::filesystem::remove_all(dir);
  }

  bool Merge(std::vector<ListedEntry> entries) {
    auto session = index->BeginScan(root, ChangeOrigin::kScan);
    DirListing listing;
    listing.entries = std::move(entries);
    bool ok = session->Accept(std::move(listing)).ok();
    return session->Finish(Status::Ok()).ok() && ok;
  }

  std::string dir;
  std::unique_ptr<Index> index;
  uint32_t root = 0;
};

void BM_NameHash(benchmark::State& state) {
  std::vector<std::string> names;
  for (int i = 0; i < 1024; ++i) names.push_back("invoice_2026_" + std::to_string(i) + ".xml");
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(DefaultHash(names[i++ & 1023], 0));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NameHash);

// Merges a listing of range(0) entries of which range(1) per mille differ
// from what is stored.
void BM_MergeDiff(benchmark::State& state) {
  const int64_t count = state.range(0);
  const int64_t changed_per_mille = state.range(1);
  auto fixture = std::make_unique<IndexFixture>();
  std::vector<ListedEntry> stored = MakeEntries(count, 1);
  if (changed_per_mille < 1000 && !fixture->Merge(stored)) state.SkipWithError("initial merge failed");
  int64_t failures = 0;
  int64_t stamp = 1;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<ListedEntry> next = stored;
    ++stamp;
    int64_t step = changed_per_mille == 0 ? 0 : 1000 / changed_per_mille;
    for (int64_t i = 0; step > 0 && i < count; i += step) next[i].mtime_ns = stamp;
    state.ResumeTiming();
    if (!fixture->Merge(std::move(next))) ++failures;
    if (changed_per_mille >= 1000) {
      // "All new": start over with an empty index each time.
      state.PauseTiming();
      fixture.reset();
      fixture = std::make_unique<IndexFixture>();
      state.ResumeTiming();
    }
  }
  state.counters["failures"] = static_cast<double>(failures);
  state.SetItemsProcessed(state.iterations() * count);
}
BENCHMARK(BM_MergeDiff)
    ->ArgsProduct({{1'000, 20'000, 200'000}, {0, 10, 1000}})
    ->ArgNames({"entries", "changed_per_mille"})
    ->Unit(benchmark::kMillisecond);

void BM_Commit1000Changes(benchmark::State& state) {
  IndexFixture fixture;
  int64_t failures = 0;
  int64_t stamp = 0;
  std::vector<ListedEntry> entries = MakeEntries(1000, 0);
  for (auto _ : state) {
    ++stamp;
    for (ListedEntry& entry : entries) entry.mtime_ns = stamp;
    if (!fixture.Merge(entries)) ++failures;
  }
  state.counters["failures"] = static_cast<double>(failures);
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Commit1000Changes)->Unit(benchmark::kMillisecond);

void BM_ReadFeed1000(benchmark::State& state) {
  IndexFixture fixture;
  if (!fixture.Merge(MakeEntries(1000, 1))) state.SkipWithError("setup merge failed");
  auto first = fixture.index->ReadChanges(fixture.root, "", 10, "");
  // A live cursor at seq 0 of this epoch is the oldest position in the log.
  std::string since;
  if (first.ok()) since = first->cursor;
  int64_t failures = 0;
  for (auto _ : state) {
    auto page = fixture.index->ReadChanges(fixture.root, "", 1000, "");
    if (!page.ok() || page->changes.size() != 1000) ++failures;
    benchmark::DoNotOptimize(page);
  }
  state.counters["failures"] = static_cast<double>(failures);
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_ReadFeed1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace dirindex

BENCHMARK_MAIN();
