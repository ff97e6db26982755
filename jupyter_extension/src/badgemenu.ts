// A click on a cell's role badge opens the role menu for that cell, as Kale's per-cell
// dropdown: the cell becomes the active and only selected cell (command mode), and the role
// menu command (commands.ts) opens the menu under the badge. Every choice then goes through
// the tagging commands, so the same rules apply (a second parameters cell is refused).

import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { CommandIDs } from './commands';
import { BADGE_CLASS } from './display';

function watchPanel(app: JupyterFrontEnd, panel: NotebookPanel): void {
  const notebook = panel.content;
  notebook.node.addEventListener('click', event => {
    if (event.button !== 0 || event.shiftKey || event.ctrlKey || event.metaKey) {
      return;
    }
    const badge = (event.target as Element | null)?.closest?.(`.${BADGE_CLASS}`);
    if (!badge) {
      return;
    }
    const index = notebook.widgets.findIndex(cell => cell.node === badge.parentElement);
    if (index < 0) {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    notebook.mode = 'command';
    notebook.activeCellIndex = index;
    notebook.deselectAll();
    app.shell.activateById(panel.id);
    void app.commands.execute(CommandIDs.roleMenu);
  });
}

export function activateBadgeMenu(app: JupyterFrontEnd, tracker: INotebookTracker): void {
  tracker.forEach(panel => watchPanel(app, panel));
  tracker.widgetAdded.connect((_sender, panel) => watchPanel(app, panel));
}
