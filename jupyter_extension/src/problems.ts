// Problems marked in the notebook itself: the cell a problem is about gets the class
// `nbops-problem-cell` and a "!" marker in its prompt column (the messages as its tooltip);
// the other cells a problem concerns (`related`: the cell defining a name the problem's cell
// uses) get `nbops-problem-related`. Cells are found by id, else by index.

import { NotebookPanel } from '@jupyterlab/notebook';

import { IAnalysis, ICellRef, IProblem } from './api';

export const PROBLEM_CELL_CLASS = 'nbops-problem-cell';
export const RELATED_CELL_CLASS = 'nbops-problem-related';
const MARKER_CLASS = 'nbops-problem-marker';

function hasIndex(ref: ICellRef): ref is ICellRef & { cell_index: number } {
  return ref.cell_index !== null && ref.cell_index !== undefined;
}

/** Where a cell a problem names is in the open notebook: by id, else by index; -1 if not. */
export function cellIndexIn(panel: NotebookPanel, ref: ICellRef): number {
  const widgets = panel.content.widgets;
  if (ref.cell_id) {
    const found = widgets.findIndex(c => c.model.id === ref.cell_id);
    if (found >= 0) {
      return found;
    }
  }
  return hasIndex(ref) && ref.cell_index < widgets.length ? ref.cell_index : -1;
}

/** The problems' messages by the (analysis') index of the cell each is about. */
export function problemsByCell(problems: IProblem[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const p of problems) {
    if (hasIndex(p)) {
      out.set(p.cell_index, [...(out.get(p.cell_index) ?? []), p.message]);
    }
  }
  return out;
}

/** How the panel names a problem's other cell (the one defining the name, for most). */
export function relatedLabel(problem: IProblem): string {
  switch (problem.kind) {
    case 'UntaggedDefinitionError':
    case 'LaterStepError':
    case 'UndefinedNameError':
    case 'DependencyError':
      return 'defined in';
    case 'ParameterError':
      return 'parameters in';
    case 'TagError':
      return 'first in';
    default:
      return 'see';
  }
}

/** Mark the notebook's problem cells from an analysis (null: clear every mark). */
export function markProblemCells(panel: NotebookPanel, analysis: IAnalysis | null): void {
  if (panel.isDisposed) {
    return;
  }
  const messages = new Map<number, string[]>();
  const related = new Set<number>();
  for (const problem of analysis?.problems ?? []) {
    const at = cellIndexIn(panel, problem);
    if (at >= 0) {
      messages.set(at, [...(messages.get(at) ?? []), problem.message]);
    }
    for (const ref of problem.related ?? []) {
      const other = cellIndexIn(panel, ref);
      if (other >= 0) {
        related.add(other);
      }
    }
  }
  panel.content.widgets.forEach((cell, i) => {
    const mine = messages.get(i);
    cell.toggleClass(PROBLEM_CELL_CLASS, !!mine);
    cell.toggleClass(RELATED_CELL_CLASS, !mine && related.has(i));
    let marker = cell.node.querySelector(`:scope > .${MARKER_CLASS}`) as HTMLElement | null;
    if (!mine) {
      marker?.remove();
      return;
    }
    if (!marker) {
      marker = document.createElement('div');
      marker.className = MARKER_CLASS;
      marker.textContent = '!';
      cell.node.appendChild(marker);
    }
    marker.title = `nbops: ${mine.join('\n')}`;
    marker.setAttribute('aria-label', marker.title);
  });
}
