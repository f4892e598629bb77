// Injectable time: builders and schedulers take a Clock so tests can move
// time by hand (FakeClock) and demos can run it faster (ScaledClock).
#pragma once
#include <atomic>
#include <chrono>
#include <mutex>

namespace bo {

using SysTime = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual SysTime now() const = 0;
  // How many clock seconds pass per real second (> 1 for demo speed-ups):
  // real waits such as "requeue until the next slot" are divided by it.
  [[nodiscard]] virtual double rate() const { return 1.0; }
};

class RealClock final : public Clock {
 public:
  [[nodiscard]] SysTime now() const override { return std::chrono::system_clock::now(); }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(SysTime start) : now_(start) {}
  [[nodiscard]] SysTime now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void set(SysTime t) {
    std::lock_guard lock(mu_);
    now_ = t;
  }
  void advance(std::chrono::system_clock::duration d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  SysTime now_;
};

// Wall time that runs `factor` times faster from the moment it is made.
// Runs `factor` times faster than real time from `anchor` (where both agree).
// Processes given the same anchor share one scaled time, so a restarted or
// standby replica does not see the clock jump back.
class ScaledClock final : public Clock {
 public:
  explicit ScaledClock(double factor, SysTime anchor = std::chrono::system_clock::now())
      : factor_(factor), start_(anchor) {}
  [[nodiscard]] SysTime now() const override {
    const auto real = std::chrono::system_clock::now() - start_;
    return start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(real * factor_);
  }
  [[nodiscard]] double rate() const override { return factor_; }

 private:
  double factor_;
  SysTime start_;
};

}  // namespace bo
