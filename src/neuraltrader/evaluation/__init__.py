"""Pure figures of returns and positions: performance metrics, statistics, verdicts."""
