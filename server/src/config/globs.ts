// Layer globs: dotted layer names matched like paths (`*` within a part, `**` across parts), each
// compiled once; and a per-layer-list index that matches each distinct glob once against all layers
// (a glob without wildcards is a dictionary lookup). The planner (planner.ts), the check and the
// tuner's space all match through here.
import picomatch from 'picomatch';
import type { Layer } from '../model/graph';

/** Longest glob the recipe schema allows (picomatch throws past 64 KiB; no layer name comes close). */
export const MAX_GLOB_LENGTH = 1024;

// Layer names are dotted; globs treat each dotted part like a path segment.
const matchers = new Map<string, (s: string) => boolean>();
/** A glob that is too long or that picomatch cannot compile matches nothing (the check reports it). */
export function globMatcher(glob: string): (name: string) => boolean {
  let m = matchers.get(glob);
  if (!m) {
    let pm: (s: string) => boolean = () => false;
    if (glob.length <= MAX_GLOB_LENGTH) {
      try {
        pm = picomatch(glob.replace(/\./g, '/'), { dot: true });
      } catch {
        /* not a glob picomatch can compile: matches nothing */
      }
    }
    m = (name: string) => pm(name.replace(/\./g, '/'));
    if (matchers.size > 10000) matchers.clear();
    matchers.set(glob, m);
  }
  return m;
}

export function matchLayers(glob: string, layers: readonly Layer[]): Layer[] {
  const m = globMatcher(glob);
  return layers.filter((l) => m(l.name));
}

// Anything picomatch may read specially (a backslash escapes) goes through picomatch, so a lookup and a
// glob test always agree.
const WILDCARD = /[*?[\]{}()!+@\\]/;

export class LayerIndex {
  private byName = new Map<string, number>();
  private cache = new Map<string, number[]>();
  constructor(readonly layers: readonly Layer[]) {
    layers.forEach((l, i) => this.byName.set(l.name, i));
  }

  /** Indexes of the layers a glob matches, in model order. */
  match(glob: string): number[] {
    let hit = this.cache.get(glob);
    if (hit) return hit;
    if (!WILDCARD.test(glob)) {
      const i = this.byName.get(glob);
      hit = i === undefined ? [] : [i];
    } else {
      const m = globMatcher(glob);
      hit = [];
      for (let i = 0; i < this.layers.length; i++) if (m(this.layers[i].name)) hit.push(i);
    }
    if (this.cache.size > 20000) this.cache.clear();
    this.cache.set(glob, hit);
    return hit;
  }
}

const indexes = new WeakMap<readonly Layer[], LayerIndex>();
export function layerIndex(layers: readonly Layer[]): LayerIndex {
  let ix = indexes.get(layers);
  if (!ix) {
    ix = new LayerIndex(layers);
    indexes.set(layers, ix);
  }
  return ix;
}
