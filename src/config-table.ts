/**
 * The machinery of the settings table of src/config.ts: a setting ({@link s}), an optional one
 * ({@link omittable}), a group of settings built into one value ({@link group}), the parsers they use, and
 * {@link ConfigOf}, the Config type derived from a table.
 */
import { z } from 'zod';

export const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
export const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes' || v === 'on');
export const list = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

/**
 * One setting: the environment variable, its parser (which holds the default), one line for the docs
 * (docs/configuration.md has the full text) and how the parsed value becomes its Config value.
 * `omittable`: the Config key is optional (code that builds a Config may leave it out).
 */
export interface Setting<S extends z.ZodType = z.ZodType, C = unknown, O extends boolean = boolean> {
  readonly env: string;
  readonly schema: S;
  readonly doc: string;
  readonly to: (value: z.output<S>) => C;
  readonly omittable: O;
}

/** Settings that land in Config as one value, built from theirs (e.g. both TLS files, or none). */
export interface Group<T extends Table = Table, C = unknown> {
  readonly group: T;
  /** Builds the value from the group's values; throws a ConfigError when they do not go together. */
  readonly build: (values: never) => C;
}

export interface Table {
  readonly [key: string]: Setting | Group | Table;
}

type ValueOf<T> =
  T extends Setting<z.ZodType, infer C> ? C : T extends Group<Table, infer C> ? C : ConfigOf<T>;
type OmittableKeys<T> = {
  [K in keyof T]: T[K] extends Setting<z.ZodType, unknown, true> ? K : never;
}[keyof T];
type Flatten<T> = { readonly [K in keyof T]: T[K] };
/** The Config value of a table: its shape, each setting replaced by its value. */
export type ConfigOf<T> = Flatten<
  { readonly [K in Exclude<keyof T, OmittableKeys<T>>]: ValueOf<T[K]> } & {
    readonly [K in OmittableKeys<T>]?: ValueOf<T[K]>;
  }
>;

export function s<S extends z.ZodType>(env: string, schema: S, doc: string): Setting<S, z.output<S>, false>;
export function s<S extends z.ZodType, C>(
  env: string,
  schema: S,
  doc: string,
  to: (value: z.output<S>) => C,
): Setting<S, C, false>;
export function s<S extends z.ZodType>(
  env: string,
  schema: S,
  doc: string,
  to: (value: z.output<S>) => unknown = (v) => v,
): Setting<S, unknown, false> {
  return { env, schema, doc, to, omittable: false };
}

export function omittable<S extends z.ZodType, C>(setting: Setting<S, C, false>): Setting<S, C, true> {
  return { ...setting, omittable: true };
}

export function group<T extends Table, C>(settings: T, build: (values: ConfigOf<T>) => C): Group<T, C> {
  return { group: settings, build };
}

export const isSetting = (x: Setting | Group | Table): x is Setting => 'env' in x && 'schema' in x;
export const isGroup = (x: Setting | Group | Table): x is Group => 'group' in x && 'build' in x;

/** Every setting of a table, with its path in Config (e.g. `rateLimits.publish.perSec`). */
export function settingsOf(table: Table, path: readonly string[] = []): { path: string; setting: Setting }[] {
  return Object.entries(table).flatMap(([key, x]) =>
    isSetting(x)
      ? [{ path: [...path, key].join('.'), setting: x }]
      : settingsOf(isGroup(x) ? x.group : x, [...path, key]),
  );
}
