// Probe: an empty program. Built by scripts/build.ts exactly as the programs are
// (same SEA flags, loader and code cache), it is what a start of such an
// executable costs before any work: the baseline of the start-up probes.
export {};
