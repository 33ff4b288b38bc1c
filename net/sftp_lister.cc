// Design note: how the SFTP walk keeps requests in flight.
//
// SFTP matches replies to requests by id, so a client may send many
// requests before the first reply. OpenSSH's sftp-server still works
// through its input one request at a time, and each READDIR on a handle
// returns the next chunk (at most 100 entries in OpenSSH) until
// SSH_FX_EOF. The walk overlaps round trips in two ways:
//  - Across directories: up to max_open_dirs handles are open at once, so
//    the round trips of OPENDIR and of small directories overlap. A server
//    that limits handles without saying so fails an OPENDIR, and the walk
//    then opens fewer at once and retries that directory.
//  - Within a directory: several READDIRs are queued on one handle. The
//    server replies to them in order, each with the next chunk, and sends
//    SSH_FX_EOF for those past the end. The queue starts at
//    initial_readdirs and grows by one per NAME reply, as TCP's slow start
//    grows its window. So a 20,000-entry directory reaches 64 queued
//    READDIRs within six round trips, and a 10-entry one costs one extra
//    request. A rescan starts each large directory with as many READDIRs
//    as it needed last time, which skips that growth.
// A directory's listing goes to the sink once all its READDIRs have
// replies, and its CLOSE goes out at the same moment without waiting for a
// reply. Subdirectories are queued as soon as a NAME reply shows them.
#include "net/sftp_lister.h"

#include <algorithm>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "index/paths.h"

namespace dirindex {

namespace {

class TreeLister {
 public:
  TreeLister(SftpClient& client, const ListJob& job, ListingSink& sink,
             const std::atomic<bool>& stop, ListReport* report)
      : client_(client), job_(job), sink_(sink), stop_(stop), report_(report),
        max_open_dirs_(std::max<uint32_t>(1, job.tuning.max_open_dirs)) {}

  Status Run();

 private:
  // Dir is one directory being listed.
  struct Dir {
    ListTarget target;
    std::string handle;
    bool open = false;      // the server returned a handle
    bool finished = false;  // EOF or an error came back: no more READDIRs
    uint32_t in_flight = 0;  // READDIRs without a reply
    uint32_t window = 1;     // READDIRs to keep in flight
    uint32_t replies = 0;    // NAME replies so far
    Status error;
    sftp::NameBatch batch;
  };

  enum class RequestKind : uint8_t { kOpendir, kReaddir, kLimits };

  struct Request {
    RequestKind kind;
    Dir* dir;  // nullptr for kLimits
  };

  void Queue(ListTarget target);
  void IssueRequests();
  void Track(uint32_t id, RequestKind kind, Dir* dir);
  Status HandleReply(const sftp::Reply& reply);
  Status OnOpendir(Dir* dir, const sftp::Reply& reply);
  Status OnReaddir(Dir* dir, const sftp::Reply& reply);
  void OnLimits(const sftp::Reply& reply);
  void ApplyLimits(const sftp::Limits& limits);
  Status Complete(Dir* dir);
  Status Emit(DirListing&& listing);
  std::string RemotePath(const std::string& relative) const;

  SftpClient& client_;
  const ListJob& job_;
  ListingSink& sink_;
  const std::atomic<bool>& stop_;
  ListReport* report_;
  uint32_t max_open_dirs_;

  std::vector<ListTarget> pending_;  // worked newest first, so the walk goes deep
  std::unordered_set<std::string> queued_paths_;
  std::vector<std::unique_ptr<Dir>> open_dirs_;
  std::unordered_map<uint32_t, Request> requests_;
  bool limits_pending_ = false;  // limits@openssh.com asked, no reply yet
  Status root_error_;
  Status sink_error_;
};

std::string TreeLister::RemotePath(const std::string& relative) const {
  if (relative.empty()) return job_.root_path;
  if (job_.root_path.ends_with('/')) return job_.root_path + relative;
  return job_.root_path + "/" + relative;
}

void TreeLister::Queue(ListTarget target) {
  if (!queued_paths_.insert(target.path).second) return;
  pending_.push_back(std::move(target));
}

void TreeLister::Track(uint32_t id, RequestKind kind, Dir* dir) {
  requests_.emplace(id, Request{kind, dir});
  ++report_->requests;
}

void TreeLister::IssueRequests() {
  const SftpListerTuning& tuning = job_.tuning;
  // Until the server's handle limit is known, one directory at a time.
  const size_t max_open = limits_pending_ ? 1 : max_open_dirs_;
  while (open_dirs_.size() < max_open && !pending_.empty() &&
         client_.outstanding() < tuning.max_outstanding) {
    auto dir = std::make_unique<Dir>();
    dir->target = std::move(pending_.back());
    pending_.pop_back();
    dir->window = std::max<uint32_t>(1, tuning.initial_readdirs);
    Track(client_.SendOpendir(RemotePath(dir->target.path)), RequestKind::kOpendir, dir.get());
    open_dirs_.push_back(std::move(dir));
  }
  for (const auto& dir : open_dirs_) {
    if (!dir->open || dir->finished) continue;
    while (dir->in_flight < dir->window && client_.outstanding() < tuning.max_outstanding) {
      Track(client_.SendReaddir(dir->handle), RequestKind::kReaddir, dir.get());
      ++dir->in_flight;
    }
  }
}

Status TreeLister::Run() {
  for (const ListTarget& target : job_.targets) Queue(target);
  if (client_.open_dirs_cap() > 0) {
    max_open_dirs_ = std::min(max_open_dirs_, client_.open_dirs_cap());
  }
  if (client_.limits()) {
    ApplyLimits(*client_.limits());
  } else if (client_.version().HasExtension("limits@openssh.com")) {
    Track(client_.SendExtended("limits@openssh.com"), RequestKind::kLimits, nullptr);
    limits_pending_ = true;
  }

  auto handler = [this](const sftp::Reply& reply) { return HandleReply(reply); };
  for (;;) {
    IssueRequests();
    if (client_.outstanding() == 0) break;
    Status pumped = client_.Pump(job_.operation_timeout, stop_, handler);
    if (pumped.ok()) continue;
    if (!sink_error_.ok()) return sink_error_;
    if (pumped.code() == StatusCode::kAborted) return pumped;
    for (const auto& dir : open_dirs_) report_->unfinished.push_back(dir->target.path);
    for (const ListTarget& target : pending_) report_->unfinished.push_back(target.path);
    return pumped;
  }
  return root_error_;
}

Status TreeLister::HandleReply(const sftp::Reply& reply) {
  auto found = requests_.find(reply.id);
  if (found == requests_.end()) {
    return Internal("SFTP reply " + std::to_string(reply.id) + " matches no request of the walk");
  }
  Request request = found->second;
  requests_.erase(found);
  switch (request.kind) {
    case RequestKind::kOpendir: return OnOpendir(request.dir, reply);
    case RequestKind::kReaddir: return OnReaddir(request.dir, reply);
    case RequestKind::kLimits: break;
  }
  OnLimits(reply);
  return Status::Ok();
}

void TreeLister::OnLimits(const sftp::Reply& reply) {
  limits_pending_ = false;
  auto limits = sftp::ParseLimits(reply);
  if (!limits.ok()) {
    spdlog::debug("limits@openssh.com on {} gave no limits: {}", client_.ssh().Endpoint(),
                  limits.status().ToString());
    client_.set_limits(sftp::Limits());
    return;
  }
  client_.set_limits(*limits);
  ApplyLimits(*limits);
}

void TreeLister::ApplyLimits(const sftp::Limits& limits) {
  if (limits.max_open_handles == 0) return;
  uint64_t allowed = std::max<uint64_t>(1, limits.max_open_handles / 2);
  max_open_dirs_ = static_cast<uint32_t>(std::min<uint64_t>(max_open_dirs_, allowed));
}

Status TreeLister::OnOpendir(Dir* dir, const sftp::Reply& reply) {
  if (reply.type == sftp::kHandle) {
    auto handle = sftp::ParseHandle(reply);
    if (!handle.ok()) return handle.status();
    dir->handle = std::move(*handle);
    dir->open = true;
    // A retry that works confirms the handle limit, which later walks on
    // this session then start with.
    if (dir->target.retried) client_.set_open_dirs_cap(max_open_dirs_);
    if (job_.previous_replies != nullptr) {
      auto known = job_.previous_replies->find(dir->target.path);
      if (known != job_.previous_replies->end()) {
        dir->window = std::clamp(known->second + 1, dir->window,
                                 std::max(dir->window, job_.tuning.max_readdirs_per_dir));
      }
    }
    return Status::Ok();
  }
  auto status = sftp::ParseStatus(reply);
  if (!status.ok()) return status.status();
  const ListTarget& target = dir->target;
  const std::string remote = RemotePath(target.path);
  if (status->code == sftp::kFxNoSuchFile) {
    if (target.requested && target.path.empty()) {
      root_error_ = Status(StatusCode::kNotFound, "root path '" + remote + "' does not exist on " +
                                                      client_.ssh().Endpoint());
    } else if (target.requested) {
      std::string parent(ParentPath(target.path));
      spdlog::debug("SFTP walk of {}: '{}' is gone, listing '{}' instead", job_.root_path,
                    ToValidUtf8(target.path), ToValidUtf8(parent));
      Queue(ListTarget{parent, target.depth - 1, false, true});
    } else {
      // It vanished after its parent's listing, which the next scan repeats.
      spdlog::debug("SFTP walk of {}: directory '{}' vanished before it was opened",
                    job_.root_path, ToValidUtf8(target.path));
    }
    std::erase_if(open_dirs_, [dir](const auto& open) { return open.get() == dir; });
    return Status::Ok();
  }
  if (status->code == sftp::kFxFailure && open_dirs_.size() > 1 && !target.retried) {
    // Some servers limit open handles without announcing it. Open fewer
    // for the rest of the walk and try this directory once more. A second
    // failure is the directory's own.
    max_open_dirs_ = static_cast<uint32_t>(open_dirs_.size() - 1);
    spdlog::info("SFTP walk of {}: OPENDIR '{}' failed with {} directories open, retrying it "
                 "with at most {} open at once",
                 job_.root_path, ToValidUtf8(target.path), open_dirs_.size(), max_open_dirs_);
    ListTarget retry = target;
    retry.retried = true;
    pending_.push_back(std::move(retry));
    std::erase_if(open_dirs_, [dir](const auto& open) { return open.get() == dir; });
    return Status::Ok();
  }
  dir->error = sftp::ToStatus(*status, "OPENDIR", remote);
  dir->finished = true;
  return Complete(dir);
}

Status TreeLister::OnReaddir(Dir* dir, const sftp::Reply& reply) {
  --dir->in_flight;
  if (reply.type == sftp::kName && dir->error.ok()) {
    size_t first_new = dir->batch.entries.size();
    Status parsed = sftp::ParseNames(reply, &dir->batch);
    if (!parsed.ok()) {
      dir->error = parsed;
      dir->finished = true;
    } else {
      ++dir->replies;
      dir->window = std::max(dir->window, std::min(dir->window + 1, job_.tuning.max_readdirs_per_dir));
      const ListTarget& target = dir->target;
      bool descend = target.recursive && (job_.max_depth == 0 || target.depth < job_.max_depth);
      for (size_t i = first_new; descend && i < dir->batch.entries.size(); ++i) {
        const ListedEntry& entry = dir->batch.entries[i];
        if (entry.type != EntryType::kDir) continue;
        Queue(ListTarget{JoinPath(target.path, entry.name), target.depth + 1, true, false});
      }
    }
  } else if (reply.type != sftp::kName) {
    auto status = sftp::ParseStatus(reply);
    if (!status.ok()) {
      if (dir->error.ok()) dir->error = status.status();
    } else if (status->code != sftp::kFxEof && dir->error.ok()) {
      dir->error = sftp::ToStatus(*status, "READDIR", RemotePath(dir->target.path));
    }
    dir->finished = true;
  }
  if (dir->finished && dir->in_flight == 0) return Complete(dir);
  return Status::Ok();
}

Status TreeLister::Complete(Dir* dir) {
  if (dir->open) {
    client_.SendClose(dir->handle);
    ++report_->requests;
  }

  DirListing listing;
  listing.path = dir->target.path;
  if (dir->replies > 1) report_->replies[dir->target.path] = dir->replies;
  for (std::string& name : dir->batch.rejected_names) {
    if (report_->rejected_examples.size() < kMaxRejectedExamples) {
      report_->rejected_examples.emplace_back(dir->target.path, std::move(name));
    }
    ++report_->rejected_names;
  }
  if (dir->error.ok()) {
    listing.entries = std::move(dir->batch.entries);
  } else {
    listing.status = std::move(dir->error);
  }
  std::erase_if(open_dirs_, [dir](const auto& open) { return open.get() == dir; });
  return Emit(std::move(listing));
}

// Counts `listing` in `report` and hands it to `sink`.
Status CountAndAccept(DirListing&& listing, ListingSink& sink, ListReport* report) {
  ScanTotals& totals = report->totals;
  if (listing.status.ok()) {
    ++totals.dirs;
    report->entries += listing.entries.size();
    for (const ListedEntry& entry : listing.entries) {
      if (entry.type == EntryType::kDir) continue;
      ++totals.files;
      if (entry.known & kKnownSize) totals.bytes += entry.size;
    }
  } else {
    ++totals.failed_dirs;
  }
  report->emitted = true;
  return sink.Accept(std::move(listing));
}

Status TreeLister::Emit(DirListing&& listing) {
  Status accepted = CountAndAccept(std::move(listing), sink_, report_);
  if (!accepted.ok() && sink_error_.ok()) sink_error_ = accepted;
  return accepted;
}

}  // namespace

Status FailUnfinished(const Status& cause, ListingSink& sink, ListReport* report) {
  std::vector<std::string> unfinished = std::move(report->unfinished);
  report->unfinished.clear();
  for (std::string& path : unfinished) {
    DirListing listing;
    listing.status = Status(cause.code(), "listing of '" + ToValidUtf8(path) +
                                              "' did not finish: " + cause.message());
    listing.path = std::move(path);
    Status accepted = CountAndAccept(std::move(listing), sink, report);
    if (!accepted.ok()) return accepted;
  }
  return Status::Ok();
}

Status ListTree(SftpClient& client, const ListJob& job, ListingSink& sink,
                const std::atomic<bool>& stop, ListReport* report) {
  TreeLister lister(client, job, sink, stop, report);
  return lister.Run();
}

}  // namespace dirindex
