/** The `k6/metrics` module of the smoke harness. */
import { runtime, type MetricType } from "../vu-runtime.js";

abstract class Metric {
  readonly name: string;

  constructor(name: string, type: MetricType, isTime = false) {
    this.name = name;
    runtime.declare({ name, type, contains: isTime ? "time" : "default" });
  }

  add(value: number | boolean, _tags?: Record<string, string>): void {
    runtime.sample(this.name, typeof value === "boolean" ? (value ? 1 : 0) : value);
  }
}

export class Counter extends Metric {
  constructor(name: string, isTime = false) {
    super(name, "counter", isTime);
  }
}

export class Gauge extends Metric {
  constructor(name: string, isTime = false) {
    super(name, "gauge", isTime);
  }
}

export class Rate extends Metric {
  constructor(name: string, isTime = false) {
    super(name, "rate", isTime);
  }

  override add(value: number | boolean, tags?: Record<string, string>): void {
    super.add(value !== 0 && value !== false, tags);
  }
}

export class Trend extends Metric {
  constructor(name: string, isTime = false) {
    super(name, "trend", isTime);
  }
}

export default { Counter, Gauge, Rate, Trend };
