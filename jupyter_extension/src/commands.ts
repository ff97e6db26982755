// Tagging commands: set, name or clear the nbops role of every selected cell, by editing the
// cells' standard `metadata.tags` (other tags are kept). They run only on a user's action.

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon, tagIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Menu } from '@lumino/widgets';

import { BADGE_CLASS } from './display';
import { refuseSecondParameters } from './fixes';
import { paletteLabel } from './palette';
import { ROLES, SEPARATOR, cellRole, normaliseStepTag, replaceRoleTag } from './tags';

export namespace CommandIDs {
  export const setRolePrefix = 'nbops:set-role-';
  export const setStep = 'nbops:set-step';
  export const clearRole = 'nbops:clear-role';
  export const roleMenu = 'nbops:role-menu';
  export const openPanel = 'nbops:open-panel';
  export const refreshPanel = 'nbops:refresh-panel';
}

export const PALETTE_CATEGORY = 'nbops';

const TAG_PATH =
  'M28.833 12.334 33 16.501l4.166-4.167zM16.21 21.61c-.523.52-1.366.52-1.885 0l-7.342-6.885c-.41-.386-.9-1.115-.935-1.677-.095-1.52-.028-4.429.018-5.971A1.093 1.093 0 0 1 7.118 6.03c1.97-.046 6.146-.095 6.534.293l8.085 7.315c.519.52.048 1.833-.475 2.356zM9.775 8.265a1.126 1.126 0 1 0-1.593 1.592 1.126 1.126 0 0 0 1.593-1.592';
const CARET_PATH = 'M28.833 12.334 33 16.501l4.166-4.167z';

/** JupyterLab's tag-with-caret icon, the tag in the role's colour (the caret themed). */
const roleIcons = new Map<string, LabIcon>(
  ROLES.map(role => [
    role.name,
    new LabIcon({
      name: `nbops:tag-${role.name}`,
      svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28" viewBox="0 0 43 28"><path fill="${role.color}" d="${TAG_PATH}"/><path class="jp-icon3" fill="#616161" d="${CARET_PATH}"/></svg>`
    })
  ])
);

export function setRoleCommand(role: string): string {
  return `${CommandIDs.setRolePrefix}${role}`;
}

/** The selected code cells of a notebook (the active cell when none is selected). nbops
 * reads tags on code cells only, so markdown and raw cells are left alone. */
export function selectedCells(notebook: Notebook): Cell[] {
  return notebook.widgets.filter(
    cell => cell.model.type === 'code' && notebook.isSelectedOrActive(cell)
  );
}

/** Write `tag` (or no role, for null) into every selected cell, as one undoable change. */
export function setRoleTag(notebook: Notebook, tag: string | null): number {
  const cells = selectedCells(notebook);
  const apply = () => {
    for (const cell of cells) {
      const before = cell.model.getMetadata('tags');
      const after = replaceRoleTag(before, tag);
      if (JSON.stringify(before ?? []) === JSON.stringify(after)) {
        continue;
      }
      if (after.length) {
        cell.model.setMetadata('tags', after);
      } else {
        cell.model.deleteMetadata('tags');
      }
    }
  };
  const shared = notebook.model?.sharedModel;
  if (shared) {
    shared.transact(apply);
  } else {
    apply();
  }
  return cells.length;
}

/** Give the keyboard back to a notebook: its active cell, in command mode. */
export function focusNotebook(app: JupyterFrontEnd, panel: NotebookPanel): void {
  if (panel.isDisposed) {
    return;
  }
  panel.content.mode = 'command';
  app.shell.activateById(panel.id);
  panel.content.activate();
}

// Where the pointer last went down: a command run from a toolbar button has no event, and
// the menu it opens belongs under the button.
let lastPointer: { x: number; y: number; target: Element | null; time: number } | null = null;
document.addEventListener(
  'pointerdown',
  event => {
    lastPointer = {
      x: event.clientX,
      y: event.clientY,
      target: event.target as Element | null,
      time: Date.now()
    };
  },
  true
);

export function addTaggingCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  palette: ICommandPalette | null
): void {
  const { commands } = app;
  const current = (): Notebook | null => {
    const panel = tracker.currentWidget;
    return panel ? panel.content : null;
  };
  const editable = (): boolean => {
    const notebook = current();
    return (
      !!notebook &&
      !!notebook.model &&
      !notebook.model.readOnly &&
      selectedCells(notebook).length > 0
    );
  };
  const activeRole = () => {
    const cell = current()?.activeCell;
    return cell ? cellRole(cell.model.getMetadata('tags')) : null;
  };
  const changed = () => {
    for (const role of ROLES) {
      commands.notifyCommandChanged(setRoleCommand(role.name));
    }
    commands.notifyCommandChanged(CommandIDs.roleMenu);
    commands.notifyCommandChanged(CommandIDs.clearRole);
  };

  ROLES.forEach((role, i) => {
    commands.addCommand(setRoleCommand(role.name), {
      label: args => (args.isPalette ? paletteLabel(`Set cell role: ${role.label}`) : role.label),
      caption: `Tag the selected cells "${role.name}": ${role.description} (keeps other tags)`,
      isEnabled: editable,
      isToggled: args => !args.isPalette && activeRole()?.role.name === role.name,
      execute: () => {
        const notebook = current();
        if (!notebook) {
          return;
        }
        if (role.name === 'parameters' && refuseSecondParameters(notebook, selectedCells(notebook))) {
          return;
        }
        setRoleTag(notebook, role.name);
        changed();
      }
    });
    if (palette) {
      palette.addItem({
        command: setRoleCommand(role.name),
        category: PALETTE_CATEGORY,
        args: { isPalette: true },
        rank: i
      });
    }
  });

  /** Ask for a step tag (`transform:features`) and set it on the selected cells. */
  const setStepFromDialog = async (notebook: Notebook, args: ReadonlyPartialJSONObject) => {
    const existing = activeRole();
    const defaultRole =
      existing && existing.role.named ? existing.role.name : (args.role as string) || 'transform';
    const named = ROLES.filter(r => r.named).map(r => r.name);
    const result = await InputDialog.getText({
      title: 'nbops step',
      label: `Step tag for the selected cells (${named.join(', ')}; ${SEPARATOR}name is a lower-case identifier):`,
      text: existing?.name
        ? `${existing.role.name}${SEPARATOR}${existing.name}`
        : `${defaultRole}${SEPARATOR}`,
      placeholder: `transform${SEPARATOR}features`,
      okLabel: 'Set'
    });
    if (!result.button.accept || result.value === null) {
      return;
    }
    const checked = normaliseStepTag(result.value, defaultRole);
    if ('error' in checked) {
      await showErrorMessage('nbops: cannot set the step', checked.error);
      return;
    }
    if (checked.tag === 'parameters' && refuseSecondParameters(notebook, selectedCells(notebook))) {
      return;
    }
    setRoleTag(notebook, checked.tag);
    changed();
  };

  commands.addCommand(CommandIDs.setStep, {
    label: args => (args.isPalette ? paletteLabel('Set cell step (role:name)…') : 'Named step…'),
    caption: `Tag the selected cells with a named step, e.g. transform${SEPARATOR}features`,
    isEnabled: editable,
    execute: async args => {
      const panel = tracker.currentWidget;
      const notebook = current();
      if (!panel || !notebook) {
        return;
      }
      try {
        await setStepFromDialog(notebook, args);
      } finally {
        // The dialog gives the focus back to what had it before (the palette's input, gone
        // by now): give it to the notebook, so the keys work on the cells again.
        focusNotebook(app, panel);
      }
    }
  });

  commands.addCommand(CommandIDs.clearRole, {
    label: args => (args.isPalette ? paletteLabel('Clear cell role') : 'Clear role'),
    caption: 'Remove the nbops role tag from the selected cells (other tags are kept)',
    isEnabled: editable,
    execute: () => {
      const notebook = current();
      if (notebook) {
        setRoleTag(notebook, null);
        changed();
      }
    }
  });

  if (palette) {
    palette.addItem({
      command: CommandIDs.setStep,
      category: PALETTE_CATEGORY,
      args: { isPalette: true },
      rank: ROLES.length
    });
    palette.addItem({
      command: CommandIDs.clearRole,
      category: PALETTE_CATEGORY,
      args: { isPalette: true },
      rank: ROLES.length + 1
    });
  }

  // The cell toolbar's dropdown-like button: shows the active cell's role, opens a menu.
  const menu = new Menu({ commands });
  menu.addClass('nbops-role-menu');
  menu.title.label = 'nbops role';
  for (const role of ROLES) {
    menu.addItem({ command: setRoleCommand(role.name) });
  }
  menu.addItem({ type: 'separator' });
  menu.addItem({ command: CommandIDs.setStep });
  menu.addItem({ command: CommandIDs.clearRole });
  menu.addItem({ type: 'separator' });
  menu.addItem({ command: CommandIDs.openPanel });

  commands.addCommand(CommandIDs.roleMenu, {
    label: args => {
      if (args.isPalette) {
        return paletteLabel('Choose cell role…');
      }
      const found = activeRole();
      return found ? found.tag.trim() : 'role';
    },
    caption: () => {
      const found = activeRole();
      return `nbops role: ${found ? found.tag.trim() : 'none'} (click to change the role of the selected cells)`;
    },
    icon: args => {
      if (args.isPalette) {
        return undefined;
      }
      const found = activeRole();
      return (found && roleIcons.get(found.role.name)) || tagIcon;
    },
    className: 'nbops-role-button',
    isEnabled: editable,
    execute: () => {
      const notebook = current();
      if (!notebook) {
        return;
      }
      let rect: DOMRect | null = null;
      const recent = lastPointer && Date.now() - lastPointer.time < 1500 ? lastPointer : null;
      const button = recent?.target?.closest(
        `[data-command="${CommandIDs.roleMenu}"], .${BADGE_CLASS}`
      );
      if (button) {
        rect = button.getBoundingClientRect();
      } else {
        const inCell = notebook.activeCell?.node.querySelector(
          `[data-command="${CommandIDs.roleMenu}"]`
        );
        rect = (inCell ?? notebook.activeCell?.node)?.getBoundingClientRect() ?? null;
      }
      if (rect) {
        menu.open(rect.left, rect.bottom + 2);
      } else if (recent) {
        menu.open(recent.x, recent.y);
      }
    }
  });
  if (palette) {
    palette.addItem({
      command: CommandIDs.roleMenu,
      category: PALETTE_CATEGORY,
      args: { isPalette: true },
      rank: ROLES.length + 2
    });
  }

  // Keep toggles and the toolbar label in step with the active cell and its tags.
  tracker.activeCellChanged.connect(changed);
  tracker.selectionChanged.connect(changed);
  tracker.widgetAdded.connect((_sender, panel) => {
    panel.content.model?.cells.changed.connect(changed);
    panel.content.modelChanged.connect(() => panel.content.model?.cells.changed.connect(changed));
  });
  let watched: Cell | null = null;
  const onMetadata = () => changed();
  tracker.activeCellChanged.connect((_sender, cell) => {
    if (watched && !watched.isDisposed) {
      watched.model.metadataChanged.disconnect(onMetadata);
    }
    watched = cell;
    cell?.model.metadataChanged.connect(onMetadata);
  });
}
