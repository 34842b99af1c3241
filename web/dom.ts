// Making elements (plain DOM, every text set as a text node, never as HTML) and closing a
// modal dialog by its backdrop. Nothing here touches the document when imported, so the
// modules built on it can be tested without one.

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { class?: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const { class: className, ...rest } = props;
  const element: HTMLElementTagNameMap[K] = Object.assign(document.createElement(tag), rest);
  if (className) element.className = className;
  element.append(...children);
  return element;
}

/** A click on the backdrop (outside the dialog's box) closes a modal dialog, as Escape does. */
export function closeOnBackdrop(dialog: HTMLDialogElement) {
  dialog.addEventListener("click", (event) => {
    if (event.target !== dialog) return;
    const box = dialog.getBoundingClientRect();
    const inside =
      event.clientX >= box.left &&
      event.clientX <= box.right &&
      event.clientY >= box.top &&
      event.clientY <= box.bottom;
    if (!inside) dialog.close();
  });
}
