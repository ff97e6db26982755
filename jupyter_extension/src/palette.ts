// The nbops entries of the command palette: labels that start with "nbops:", so the palette
// lists them first when the user types "nbops" (Lumino ranks a match in the label above a
// match in the category), and their keyboard shortcuts shown beside them.
//
// A palette entry is the command with the args `{ isPalette: true }` (its longer label),
// while the shortcuts (schema/plugin.json, or the user's settings) bind the command with no
// args, and the palette shows a shortcut only for a binding with the entry's exact args. So
// every nbops binding without args gets a twin with `isPalette: true`: the same keys and
// selector, added and removed with it, doing the same (the commands ignore the flag when
// they run). The menus keep showing the plain binding.

import { CommandRegistry } from '@lumino/commands';
import { IDisposable } from '@lumino/disposable';

export const PALETTE_PREFIX = 'nbops: ';

/** A command's label in the palette. */
export function paletteLabel(text: string): string {
  return `${PALETTE_PREFIX}${text}`;
}

function isNbopsPlainBinding(binding: CommandRegistry.IKeyBinding): boolean {
  return binding.command.startsWith('nbops:') && !binding.args?.isPalette;
}

/** Keep a palette twin of every nbops key binding, now and as the shortcut settings change. */
export function mirrorShortcutsInPalette(commands: CommandRegistry): void {
  const twins = new Map<CommandRegistry.IKeyBinding, IDisposable>();
  const add = (binding: CommandRegistry.IKeyBinding) => {
    if (!isNbopsPlainBinding(binding) || twins.has(binding)) {
      return;
    }
    twins.set(
      binding,
      commands.addKeyBinding({
        command: binding.command,
        keys: [...binding.keys],
        selector: binding.selector,
        args: { ...(binding.args ?? {}), isPalette: true }
      })
    );
  };
  commands.keyBindingChanged.connect((_sender, change) => {
    if (change.type === 'added') {
      add(change.binding);
    } else {
      twins.get(change.binding)?.dispose();
      twins.delete(change.binding);
    }
  });
  commands.keyBindings.forEach(add);
}
