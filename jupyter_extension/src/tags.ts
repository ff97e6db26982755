// Reading and writing nbops role tags in a cell's standard `metadata.tags`, with the same
// rules as the library (src/nbops/notebook/tags.py): a tag is an nbops tag when the part
// before the separator, stripped and lower-cased, is a role name.

import { IRoleSpec, VOCABULARY } from './vocabulary';

export const ROLES: IRoleSpec[] = VOCABULARY.roles;
export const SEPARATOR = VOCABULARY.separator;
export const STEP_NAME_RE = new RegExp(VOCABULARY.step_name_pattern);

export function roleSpec(name: string): IRoleSpec | undefined {
  return ROLES.find(r => r.name === name);
}

/** The role and step name one tag carries, or null for a tag nbops does not read. */
export interface ICellRole {
  role: IRoleSpec;
  name: string | null;
  tag: string;
}

export function parseTag(tag: string): ICellRole | null {
  const text = tag.trim();
  const at = text.indexOf(SEPARATOR);
  const head = (at < 0 ? text : text.slice(0, at)).toLowerCase();
  const role = roleSpec(head);
  if (!role) {
    return null;
  }
  return { role, name: at < 0 ? null : text.slice(at + SEPARATOR.length), tag };
}

export function isRoleTag(tag: string): boolean {
  return parseTag(tag) !== null;
}

/** The nbops role of a cell with these tags (the first role tag), or null. */
export function cellRole(tags: unknown): ICellRole | null {
  if (!Array.isArray(tags)) {
    return null;
  }
  for (const tag of tags) {
    if (typeof tag === 'string') {
      const found = parseTag(tag);
      if (found) {
        return found;
      }
    }
  }
  return null;
}

/** The tags with every nbops role tag removed and `newTag` (if any) appended; other tags kept. */
export function replaceRoleTag(tags: unknown, newTag: string | null): string[] {
  const kept = (Array.isArray(tags) ? tags : []).filter(
    (t): t is string => typeof t === 'string' && !isRoleTag(t)
  );
  return newTag ? [...kept, newTag] : kept;
}

/**
 * Check a step tag typed by the user (`transform:features`, or `features` for the
 * default role). Returns the tag to write or an error message.
 */
export function normaliseStepTag(
  text: string,
  defaultRole: string
): { tag: string } | { error: string } {
  const value = text.trim();
  if (!value) {
    return { error: 'empty step tag' };
  }
  const at = value.indexOf(SEPARATOR);
  const roleName = (at < 0 ? defaultRole : value.slice(0, at)).toLowerCase();
  const name = at < 0 ? value : value.slice(at + SEPARATOR.length);
  const role = roleSpec(roleName);
  if (!role) {
    return { error: `unknown role '${roleName}'` };
  }
  if (!name) {
    return { tag: role.name };
  }
  if (!role.named) {
    return { error: `${role.name} cells cannot name a step: use the plain tag '${role.name}'` };
  }
  if (!STEP_NAME_RE.test(name)) {
    return {
      error: `invalid step name '${name}': use a lower-case identifier, e.g. ${role.name}${SEPARATOR}clean_data`
    };
  }
  return { tag: `${role.name}${SEPARATOR}${name}` };
}
