// JSON merge patch (RFC 7386) and JSON patch (RFC 6902). Strategic merge patch is served as a JSON
// merge patch: lists are replaced whole, never merged by key, and `$patch` directives are not
// understood. That differs from a real apiserver for built-in kinds with merge keys (containers,
// ports, conditions...), so code that relies on list merging must use JSON patch or full updates.
import { isDeepStrictEqual } from 'node:util';
import { clone, isPlainObject } from './objects.ts';
import { ApiError, badRequest } from './status.ts';

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

// The apiserver answers 422 (reason Invalid) when a well-formed JSON patch cannot be applied.
function unprocessable(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw badRequest(`invalid JSON pointer: ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(arr: unknown[], token: string, forInsert: boolean): number {
  if (forInsert && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw unprocessable(`invalid array index: ${token}`);
  const i = Number(token);
  if (i > arr.length || (!forInsert && i === arr.length)) throw unprocessable(`array index out of bounds: ${token}`);
  return i;
}

/** The container holding the last token of `tokens`, and that token. */
function parentOf(doc: unknown, tokens: string[], path: string): { parent: unknown; last: string } {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (isPlainObject(cur) && Object.hasOwn(cur, t)) cur = cur[t];
    else throw unprocessable(`doc is missing path: "${path}"`);
  }
  return { parent: cur, last: tokens[tokens.length - 1] };
}

function getAt(doc: unknown, path: string): unknown {
  let cur = doc;
  for (const t of parsePointer(path)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (isPlainObject(cur) && Object.hasOwn(cur, t)) cur = cur[t];
    else throw unprocessable(`doc is missing path: "${path}"`);
  }
  return cur;
}

function add(doc: unknown, path: string, value: unknown): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return clone(value);
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true), 0, clone(value));
  else if (isPlainObject(parent)) parent[last] = clone(value);
  else throw unprocessable(`doc is missing path: "${path}"`);
  return doc;
}

function remove(doc: unknown, path: string): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) throw unprocessable('cannot remove the whole document');
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, false), 1);
  else if (isPlainObject(parent) && Object.hasOwn(parent, last)) delete parent[last];
  else throw unprocessable(`Unable to remove nonexistent key: ${last}: missing value`);
  return doc;
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json patch must be an array of operations');
  let doc = clone(target);
  for (const raw of ops) {
    if (!isPlainObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw badRequest(`invalid json patch operation: ${JSON.stringify(raw)}`);
    }
    const op = raw as unknown as Operation;
    switch (op.op) {
      case 'add':
        doc = add(doc, op.path, op.value);
        break;
      case 'remove':
        doc = remove(doc, op.path);
        break;
      case 'replace':
        getAt(doc, op.path);
        doc = op.path === '' ? clone(op.value) : add(remove(doc, op.path), op.path, op.value);
        break;
      case 'move': {
        if (typeof op.from !== 'string') throw badRequest('move operation needs "from"');
        const v = clone(getAt(doc, op.from));
        doc = add(remove(doc, op.from), op.path, v);
        break;
      }
      case 'copy':
        if (typeof op.from !== 'string') throw badRequest('copy operation needs "from"');
        doc = add(doc, op.path, getAt(doc, op.from));
        break;
      case 'test':
        if (!isDeepStrictEqual(getAt(doc, op.path), op.value)) throw unprocessable(`testing value ${op.path} failed: test failed`);
        break;
      default:
        throw badRequest(`unexpected json patch operation: ${JSON.stringify(op.op)}`);
    }
  }
  return doc;
}
