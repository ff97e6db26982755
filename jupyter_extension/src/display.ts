// Role display: every cell with an nbops role tag gets the classes `nbops-tagged` and
// `nbops-role-ROLE` (which set `--nbops-role-color`: a coloured left bar) and a badge in the
// prompt column (a click on it opens the role menu: badgemenu.ts). Updated whenever the
// cell's metadata or the notebook's cell list changes.

import { Cell, ICellModel } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { ROLES, cellRole } from './tags';

export const TAGGED_CLASS = 'nbops-tagged';
export const BADGE_CLASS = 'nbops-role-badge';

export function roleClass(role: string): string {
  return `nbops-role-${role}`;
}

function luminance(hex: string): number {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex.trim());
  if (!m) {
    return 0;
  }
  const [r, g, b] = m.slice(1).map(x => {
    const c = parseInt(x, 16) / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** Black or white text, whichever reads better on `background` (WCAG contrast). */
export function inkFor(background: string): string {
  const l = luminance(background);
  const onWhite = 1.05 / (l + 0.05);
  const onBlack = (l + 0.05) / 0.05;
  return onWhite >= onBlack ? '#ffffff' : '#111111';
}

/** One CSS rule per role, with the role's colour from the vocabulary. */
export function injectRoleStyles(): void {
  if (document.getElementById('nbops-role-styles')) {
    return;
  }
  const style = document.createElement('style');
  style.id = 'nbops-role-styles';
  style.textContent = ROLES.map(
    r =>
      `.${roleClass(r.name)} { --nbops-role-color: ${r.color}; --nbops-role-ink: ${inkFor(r.color)}; }`
  ).join('\n');
  document.head.appendChild(style);
}

/** Bring one cell widget's classes and badge in line with its tags. */
export function updateCell(cell: Cell): void {
  if (cell.isDisposed || !cell.model) {
    return;
  }
  // nbops reads the tags of code cells only.
  const found = cell.model.type === 'code' ? cellRole(cell.model.getMetadata('tags')) : null;
  for (const r of ROLES) {
    cell.toggleClass(roleClass(r.name), found?.role.name === r.name);
  }
  cell.toggleClass(TAGGED_CLASS, found !== null);
  let badge = cell.node.querySelector(`:scope > .${BADGE_CLASS}`) as HTMLElement | null;
  if (!found) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = document.createElement('div');
    badge.className = BADGE_CLASS;
    badge.setAttribute('aria-haspopup', 'menu');
    cell.node.appendChild(badge);
  }
  badge.replaceChildren(found.role.name);
  if (found.name) {
    const name = document.createElement('span');
    name.className = 'nbops-badge-name';
    name.textContent = found.name;
    badge.appendChild(name);
  }
  badge.dataset.role = found.role.name;
  badge.title = `nbops ${found.role.label}${found.name ? ` step "${found.name}"` : ''}: ${found.role.description} (click to change the role)`;
}

const watched = new WeakSet<ICellModel>();
const cellOfModel = new WeakMap<ICellModel, Set<Cell>>();

function watchCell(cell: Cell): void {
  const model = cell.model;
  let cells = cellOfModel.get(model);
  if (!cells) {
    cells = new Set();
    cellOfModel.set(model, cells);
  }
  cells.add(cell);
  cell.disposed.connect(() => cells!.delete(cell));
  if (!watched.has(model)) {
    watched.add(model);
    model.metadataChanged.connect((sender, change) => {
      if (change.key !== 'tags') {
        return;
      }
      for (const w of cellOfModel.get(sender) ?? []) {
        updateCell(w);
      }
    });
  }
  updateCell(cell);
}

function watchNotebook(panel: NotebookPanel): void {
  const notebook = panel.content;
  const seen = new WeakSet<Cell>();
  const refresh = () => {
    for (const cell of notebook.widgets) {
      if (!seen.has(cell)) {
        seen.add(cell);
        watchCell(cell);
      } else {
        updateCell(cell);
      }
    }
  };
  const onCellsChanged = () => {
    // Cell widgets are created right after the model's `changed` signal.
    requestAnimationFrame(refresh);
  };
  const connectModel = () => {
    notebook.model?.cells.changed.connect(onCellsChanged);
    refresh();
  };
  notebook.modelChanged.connect(connectModel);
  void panel.context.ready.then(connectModel);
  connectModel();
}

export function activateRoleDisplay(tracker: INotebookTracker): void {
  injectRoleStyles();
  tracker.forEach(watchNotebook);
  tracker.widgetAdded.connect((_sender, panel) => watchNotebook(panel));
}
