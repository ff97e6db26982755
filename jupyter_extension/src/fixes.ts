// One-click fixes in the pipeline panel. The server offers a fix only where it is mechanical
// and checked (src/nbops/labserver/fixes.py); it is applied here to the open notebook's model,
// in one transaction, so Undo takes it back and the user saves it. Before applying, the cells
// a fix names are checked to be as the server read them (the tag, the lines); otherwise the
// fix is refused with a message, never applied to the wrong cell.
//
// Also here: the suggested roles (`nbops tag --suggest`, GET /nbops/api/suggest) accepted all
// at once or one by one, and the refusal of a second `parameters` cell when it is tagged.

import { showErrorMessage } from '@jupyterlab/apputils';
import { Cell, ICellModel } from '@jupyterlab/cells';
import { Notebook, NotebookPanel } from '@jupyterlab/notebook';

import {
  ApiError,
  IAnalysis,
  IApiErrorBody,
  IProblem,
  IQuickFix,
  ISuggestedCell,
  ISuggestion,
  api
} from './api';
import { cellRole, replaceRoleTag, roleSpec } from './tags';

type Child = Node | string | null | undefined | false;
type Children = Child | Children[];

function el(
  tag: string,
  attrs: Record<string, string | boolean | ((e: Event) => void) | undefined> = {},
  ...children: Children[]
): HTMLElement {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      node.addEventListener(key.replace(/^on/, ''), value);
    } else if (key === 'class') {
      node.className = value as string;
    } else {
      node.setAttribute(key, value === true ? '' : value);
    }
  }
  for (const child of (children as unknown[]).flat(Infinity) as Child[]) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child);
    }
  }
  return node;
}

const CHANGED =
  'the notebook changed since the panel read it: save it, and the panel offers the fix again if it still applies';

/** A fix that cannot be applied as it stands: the message says why. */
export class FixError extends Error {}

/** A cell of the open notebook: by id when the file gives one, else by index. */
function findCell(
  panel: NotebookPanel,
  index: number | null | undefined,
  id: string | null | undefined
): { model: ICellModel; index: number } | null {
  const cells = panel.content.model?.cells;
  if (!cells) {
    return null;
  }
  if (id) {
    for (let i = 0; i < cells.length; i++) {
      if (cells.get(i).id === id) {
        return { model: cells.get(i), index: i };
      }
    }
    return null;
  }
  if (index === null || index === undefined || index < 0 || index >= cells.length) {
    return null;
  }
  return { model: cells.get(index), index };
}

function codeCell(
  panel: NotebookPanel,
  index: number | null | undefined,
  id: string | null | undefined
): { model: ICellModel; index: number } {
  const found = findCell(panel, index, id);
  if (!found || found.model.type !== 'code') {
    throw new FixError(`cell ${(index ?? 0) + 1} is not found: ${CHANGED}`);
  }
  return found;
}

/** The nbops role tag of a cell (as written, trimmed), or null. */
function roleTag(model: ICellModel): string | null {
  return cellRole(model.getMetadata('tags'))?.tag.trim() ?? null;
}

/** Whether a cell's nbops tag is still `expected` (as the server wrote it: the role in
 * lower case), so a fix read from the saved file still fits the open notebook. */
function tagIs(model: ICellModel, expected: string | null | undefined): boolean {
  return (roleTag(model)?.toLowerCase() ?? null) === (expected?.toLowerCase() ?? null);
}

function setTag(model: ICellModel, tag: string | null): void {
  const after = replaceRoleTag(model.getMetadata('tags'), tag);
  if (after.length) {
    model.setMetadata('tags', after);
  } else {
    model.deleteMetadata('tags');
  }
}

/** How two sources are merged (as fixes.py checks it): the first, a line break, the second. */
function merged(head: string, tail: string): string {
  const start = head.replace(/\n+$/, '');
  return start ? `${start}\n${tail}` : tail;
}

function transact(panel: NotebookPanel, apply: () => void): void {
  const shared = panel.content.model?.sharedModel;
  if (shared) {
    shared.transact(apply);
  } else {
    apply();
  }
}

/** Apply a fix to the open notebook, as one undoable change; returns the index of the cell
 * to show. Throws FixError when the cells are no longer as the server read them. */
export function applyFix(panel: NotebookPanel, fix: IQuickFix): number {
  const model = panel.content.model;
  if (!model || model.readOnly) {
    throw new FixError('the notebook is read-only');
  }
  switch (fix.kind) {
    case 'tag-cell': {
      const cell = codeCell(panel, fix.cell_index, fix.cell_id);
      if (!tagIs(cell.model, fix.current)) {
        throw new FixError(`cell ${cell.index + 1} is now tagged ${roleTag(cell.model) ?? '(none)'}: ${CHANGED}`);
      }
      transact(panel, () => setTag(cell.model, fix.tag ?? null));
      return cell.index;
    }
    case 'merge-parameters': {
      const into = codeCell(panel, fix.cell_index, fix.cell_id);
      const from = codeCell(panel, fix.from_index, fix.from_id);
      if (
        into.index === from.index ||
        cellRole(into.model.getMetadata('tags'))?.role.name !== 'parameters' ||
        cellRole(from.model.getMetadata('tags'))?.role.name !== 'parameters'
      ) {
        throw new FixError(`cells ${into.index + 1} and ${from.index + 1} are not both tagged parameters: ${CHANGED}`);
      }
      const source = merged(into.model.sharedModel.getSource(), from.model.sharedModel.getSource());
      transact(panel, () => {
        into.model.sharedModel.setSource(source);
        model.sharedModel.deleteCell(from.index);
      });
      return into.index < from.index ? into.index : into.index - 1;
    }
    case 'move-to-parameters': {
      const cell = codeCell(panel, fix.cell_index, fix.cell_id);
      const params = codeCell(panel, fix.parameters_index, fix.parameters_id);
      if (cellRole(params.model.getMetadata('tags'))?.role.name !== 'parameters') {
        throw new FixError(`cell ${params.index + 1} is no longer tagged parameters: ${CHANGED}`);
      }
      const lines = cell.model.sharedModel.getSource().split('\n');
      const first = (fix.line ?? 0) - 1;
      const end = fix.end_line ?? fix.line ?? 0;
      if (first < 0 || lines.slice(first, end).join('\n').trim() !== fix.source) {
        throw new FixError(`line ${fix.line} of cell ${cell.index + 1} is no longer \`${fix.source}\`: ${CHANGED}`);
      }
      const kept = [...lines.slice(0, first), ...lines.slice(end)].join('\n');
      const into = merged(params.model.sharedModel.getSource(), fix.source ?? '');
      transact(panel, () => {
        cell.model.sharedModel.setSource(kept);
        params.model.sharedModel.setSource(into);
      });
      return params.index;
    }
    default:
      throw new FixError(`this version of the panel cannot apply a ${fix.kind} fix`);
  }
}

/** Why `targets` may not be tagged parameters (a second parameters cell), or null. */
export function parametersRefusal(notebook: Notebook, targets: Cell[]): string | null {
  if (targets.length > 1) {
    return (
      `${targets.length} cells are selected: only one cell may be tagged parameters ` +
      '(papermill reads only the first). Select one cell, or merge the cells first.'
    );
  }
  const chosen = new Set(targets.map(c => c.model.id));
  const cells = notebook.model?.cells;
  if (!cells) {
    return null;
  }
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code' || chosen.has(cell.id)) {
      continue;
    }
    if (cellRole(cell.getMetadata('tags'))?.role.name === 'parameters') {
      return (
        `Cell ${i + 1} is already tagged parameters, and papermill reads only the first ` +
        `parameters cell. Move these lines into cell ${i + 1}, or clear its tag first.`
      );
    }
  }
  return null;
}

/** Refuse (with a dialog) tagging `targets` parameters when another cell is; true when refused. */
export function refuseSecondParameters(notebook: Notebook, targets: Cell[]): boolean {
  const refusal = parametersRefusal(notebook, targets);
  if (refusal) {
    void showErrorMessage('nbops: one parameters cell', refusal);
    return true;
  }
  return false;
}

// -- the panel's part ---------------------------------------------------------------------

interface IFixState {
  sha256: string | null; // of the saved notebook the fixes were offered for
  applied: Map<string, number>; // fix -> the cell it changed
  errors: Map<string, string>; // fix -> why it was not applied
  acceptError: string | null;
  suggestion: ISuggestion | null;
  suggesting: boolean;
  suggestError: IApiErrorBody | null;
  accepted: Set<number>;
}

function errorBody(error: unknown): IApiErrorBody {
  return error instanceof ApiError ? error.body : { message: String((error as Error)?.message ?? error) };
}

/** The fixes part of the panel: fix buttons beside problems, the list of constant moves,
 * and the suggested roles. It keeps what it did per notebook until the panel reads the
 * saved notebook again. */
export class FixesView {
  constructor(
    private readonly rerender: () => void,
    private readonly jump: (index: number | null | undefined, id: string | null | undefined) => void
  ) {}

  /** Called with each analysis: when the saved notebook changed, the fixes applied are in
   * it (or were undone), and a suggestion wholly accepted is done. */
  sync(panel: NotebookPanel, analysis: IAnalysis): void {
    const state = this._state(panel);
    const sha = analysis.sha256 ?? null;
    if (sha === state.sha256) {
      return;
    }
    state.sha256 = sha;
    state.applied.clear();
    state.errors.clear();
    state.acceptError = null;
    const changes = state.suggestion?.cells.filter(c => c.changes) ?? [];
    if (changes.length && changes.every(c => state.accepted.has(c.index))) {
      state.suggestion = null;
      state.accepted.clear();
    }
  }

  forget(panel: NotebookPanel): void {
    this._states.delete(panel.id);
  }

  /** The button of a problem's fix, or null. */
  problemFix(panel: NotebookPanel, problem: IProblem): HTMLElement | null {
    const fix = problem.quick_fix;
    if (!fix) {
      return null;
    }
    if (fix.kind === 'suggest-roles') {
      return this.suggestButton(panel);
    }
    return this._fixButton(panel, fix);
  }

  /** The fixes not tied to a problem (constants to move into the parameters cell). */
  fixList(panel: NotebookPanel, analysis: IAnalysis): HTMLElement | string {
    const fixes = analysis.fixes ?? [];
    const state = this._state(panel);
    const untagged = analysis.cells.filter(c => c.type === 'code' && !c.role).length;
    const more =
      analysis.tagged && untagged && !analysis.run_output && !state.suggestion
        ? el(
            'div',
            { class: 'nbops-hint nbops-suggest-more' },
            `${untagged} code cell(s) untagged. `,
            this.suggestButton(panel, 'Suggest roles for them…')
          )
        : null;
    if (!fixes.length) {
      return more ?? '';
    }
    return el(
      'section',
      { class: 'nbops-section nbops-fixes' },
      el('h3', { class: 'nbops-section-title' }, `Suggested fixes (${fixes.length})`),
      el(
        'ul',
        {},
        fixes.map(fix =>
          el(
            'li',
            { class: 'nbops-fix-item', 'data-fix-kind': fix.kind },
            el('div', {}, fix.message ?? fix.label, fix.source ? [': ', el('code', {}, fix.source)] : null),
            this._fixButton(panel, fix)
          )
        )
      ),
      more
    );
  }

  suggestButton(panel: NotebookPanel, label = 'Suggest roles…'): HTMLElement {
    const state = this._state(panel);
    return el(
      'button',
      {
        class: 'jp-Button jp-mod-styled jp-mod-accept nbops-suggest',
        disabled: state.suggesting,
        title: 'Propose a role for each untagged code cell (nbops tag --suggest); accept all, or one by one',
        onclick: () => void this._suggest(panel)
      },
      state.suggesting ? 'Suggesting…' : label
    );
  }

  /** The suggested roles, once asked for. */
  suggestions(panel: NotebookPanel): HTMLElement | string {
    const state = this._state(panel);
    if (state.suggestError) {
      return el(
        'div',
        { class: 'nbops-error nbops-suggest-error' },
        el('div', { class: 'nbops-error-title' }, 'Cannot suggest roles'),
        el('div', {}, state.suggestError.message),
        state.suggestError.fix ? el('div', { class: 'nbops-fix' }, `Fix: ${state.suggestError.fix}`) : null
      );
    }
    const suggestion = state.suggestion;
    if (!suggestion) {
      return '';
    }
    const changes = suggestion.cells.filter(c => c.changes);
    const pending = changes.filter(c => !state.accepted.has(c.index));
    const untagged = suggestion.cells.filter(c => !c.changes && !c.kept && !c.tag).length;
    return el(
      'section',
      { class: 'nbops-section nbops-suggestions' },
      el('h3', { class: 'nbops-section-title' }, `Suggested roles (${changes.length})`),
      changes.length
        ? el(
            'div',
            { class: 'nbops-suggest-actions' },
            el(
              'button',
              {
                class: 'jp-Button jp-mod-styled jp-mod-accept nbops-suggest-accept-all',
                disabled: !pending.length,
                title: 'Tag every cell as suggested (one change: Undo takes it back)',
                onclick: () => this._accept(panel, pending)
              },
              pending.length ? `Accept all (${pending.length})` : 'All accepted'
            ),
            el(
              'button',
              {
                class: 'jp-Button jp-mod-styled jp-mod-reject nbops-suggest-dismiss',
                onclick: () => {
                  state.suggestion = null;
                  state.accepted.clear();
                  this.rerender();
                }
              },
              'Dismiss'
            )
          )
        : el('p', { class: 'nbops-hint' }, 'nbops suggests no change of tags.'),
      state.acceptError ? el('div', { class: 'nbops-error nbops-fix-error' }, state.acceptError) : null,
      el(
        'ul',
        { class: 'nbops-suggest-list' },
        changes.map(c => this._suggestedRow(panel, c, state.accepted.has(c.index)))
      ),
      untagged ? el('p', { class: 'nbops-hint' }, `${untagged} cell(s) left untagged: exploration the pipeline does not need.`) : null,
      suggestion.problems.length
        ? el(
            'div',
            { class: 'nbops-hint nbops-suggest-problems' },
            'Tagged as suggested, the notebook still has problems: ',
            suggestion.problems.map(p => (p.index !== null && p.index !== undefined ? `cell ${p.index + 1}: ` : '') + p.message).join('; ')
          )
        : changes.length
          ? el('p', { class: 'nbops-hint' }, `Tagged as suggested, the notebook exports (${suggestion.steps.length} steps). Accept, then save.`)
          : null
    );
  }

  private _suggestedRow(panel: NotebookPanel, c: ISuggestedCell, accepted: boolean): HTMLElement {
    const role = c.role ?? 'none';
    return el(
      'li',
      { class: `nbops-suggested${accepted ? ' nbops-accepted' : ''}`, 'data-cell-index': String(c.index) },
      el(
        'div',
        { class: 'nbops-suggested-head' },
        el(
          'a',
          {
            class: 'nbops-cell-link',
            href: '#',
            title: 'Show this cell in the notebook',
            onclick: (e: Event) => {
              e.preventDefault();
              this.jump(c.index, c.id);
            }
          },
          `cell ${c.number}`
        ),
        ' ',
        el('span', { class: `nbops-badge nbops-role-${role}`, title: roleSpec(role)?.description }, c.tag ?? 'untagged'),
        c.current ? el('span', { class: 'nbops-hint' }, ` (now ${c.current})`) : null,
        accepted
          ? el('span', { class: 'nbops-applied' }, ' accepted')
          : el(
              'button',
              {
                class: 'jp-Button jp-mod-styled jp-mod-reject nbops-suggest-accept',
                title: `Tag cell ${c.number} ${c.tag ?? '(no role)'}`,
                onclick: () => this._accept(panel, [c])
              },
              'Accept'
            )
      ),
      el('div', { class: 'nbops-hint' }, c.reason)
    );
  }

  private _fixButton(panel: NotebookPanel, fix: IQuickFix): HTMLElement {
    const state = this._state(panel);
    const key = JSON.stringify(fix);
    const applied = state.applied.get(key);
    if (applied !== undefined) {
      return el(
        'div',
        { class: 'nbops-applied' },
        'Fixed in the notebook: save it (Ctrl+S) to check it; Undo (Z in command mode) takes it back.'
      );
    }
    return el(
      'div',
      { class: 'nbops-quick-fix' },
      el(
        'button',
        {
          class: 'jp-Button jp-mod-styled jp-mod-accept nbops-fix-button',
          'data-fix-kind': fix.kind,
          title: 'Change the notebook as the fix says (Undo takes it back), then save',
          onclick: () => {
            try {
              const index = applyFix(panel, fix);
              state.applied.set(key, index);
              state.errors.delete(key);
              this.rerender();
              this.jump(index, null);
            } catch (error) {
              state.errors.set(key, error instanceof FixError ? `Not fixed: ${error.message}.` : String(error));
              this.rerender();
            }
          }
        },
        fix.label
      ),
      state.errors.has(key) ? el('div', { class: 'nbops-error nbops-fix-error' }, state.errors.get(key)) : null
    );
  }

  private async _suggest(panel: NotebookPanel): Promise<void> {
    const state = this._state(panel);
    state.suggesting = true;
    state.suggestError = null;
    state.acceptError = null;
    this.rerender();
    try {
      // The suggestion reads the saved file: save what the user changed first.
      if (panel.context.model.dirty && !panel.context.model.readOnly) {
        await panel.context.save();
      }
      state.suggestion = await api.suggest(panel.context.localPath);
      state.accepted.clear();
    } catch (error) {
      state.suggestion = null;
      state.suggestError = errorBody(error);
    } finally {
      state.suggesting = false;
      this.rerender();
    }
  }

  /** Tag the cells as suggested, in one undoable change; refuse all when one changed since. */
  private _accept(panel: NotebookPanel, cells: ISuggestedCell[]): void {
    const state = this._state(panel);
    try {
      const targets = cells.map(c => {
        const found = codeCell(panel, c.index, c.id);
        if (!tagIs(found.model, c.current)) {
          throw new FixError(`cell ${found.index + 1} is now tagged ${roleTag(found.model) ?? '(none)'}: ${CHANGED}`);
        }
        return { cell: c, model: found.model };
      });
      transact(panel, () => {
        for (const { cell, model } of targets) {
          setTag(model, cell.tag);
        }
      });
      for (const c of cells) {
        state.accepted.add(c.index);
      }
      state.acceptError = null;
    } catch (error) {
      state.acceptError = error instanceof FixError ? `Not accepted: ${error.message}.` : String(error);
    }
    this.rerender();
  }

  private _state(panel: NotebookPanel): IFixState {
    let state = this._states.get(panel.id);
    if (!state) {
      state = {
        sha256: null,
        applied: new Map(),
        errors: new Map(),
        acceptError: null,
        suggestion: null,
        suggesting: false,
        suggestError: null,
        accepted: new Set()
      };
      this._states.set(panel.id, state);
    }
    return state;
  }

  private _states = new Map<string, IFixState>();
}

// -- results that go stale ------------------------------------------------------------------

/** The note on an export, run or bundle box made from an older notebook. */
export function outdatedNote(what: string): HTMLElement {
  return el(
    'div',
    { class: 'nbops-outdated-note', role: 'note' },
    `Outdated: made from an older version of the notebook. ${what}`
  );
}

/** The notebook's export found on disk (after a reload, before any export here), and
 * whether it was made from the notebook as saved now. */
export function lastExportBox(analysis: IAnalysis): HTMLElement | null {
  const last = analysis.last_export;
  if (!last) {
    return null;
  }
  return el(
    'div',
    { class: `nbops-result nbops-export-result nbops-last-export${last.current ? '' : ' nbops-outdated'}` },
    last.current ? null : outdatedNote('Export again to include the changes.'),
    'Last export: ',
    el('strong', {}, `${last.name} v${last.version}`),
    el('div', {}, 'in ', el('code', { class: 'nbops-folder' }, last.folder))
  );
}
