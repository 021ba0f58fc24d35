/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'
import type { z } from 'zod'

/**
 * Pieces of the console's forms and tables. Labelled fields: the label, a hint, the control and its error,
 * tied together with aria-describedby (the hint's id is `${id}-hint`, the error's `${id}-error`),
 * so a screen reader reads what a field wants and what was wrong with it.
 */

interface FieldProps {
  id: string
  name: string
  label: string
  hint?: Child
  error?: string | undefined
}

const describedBy = (props: FieldProps) => [props.error ? `${props.id}-error` : '', props.hint ? `${props.id}-hint` : ''].filter(Boolean).join(' ') || undefined

function Around(props: FieldProps & { children: Child }) {
  return (
    <>
      <label class="field" for={props.id}>
        {props.label}
      </label>
      {props.hint ? (
        <p class="hint" id={`${props.id}-hint`}>
          {props.hint}
        </p>
      ) : null}
      {props.children}
      {props.error ? (
        <p class="field-error" id={`${props.id}-error`}>
          {props.error}
        </p>
      ) : null}
    </>
  )
}

export function InputField(
  props: FieldProps & { type?: 'text' | 'url' | 'number' | 'email'; value?: string | undefined; required?: boolean; maxlength?: number; min?: number; max?: number; placeholder?: string },
) {
  return (
    <Around {...props}>
      <input
        type={props.type ?? 'text'}
        id={props.id}
        name={props.name}
        value={props.value ?? ''}
        required={props.required}
        maxlength={props.maxlength}
        min={props.min}
        max={props.max}
        step={props.type === 'number' ? 1 : undefined}
        placeholder={props.placeholder}
        autocomplete="off"
        aria-describedby={describedBy(props)}
        aria-invalid={props.error ? 'true' : undefined}
      />
    </Around>
  )
}

export function TextAreaField(props: FieldProps & { value?: string | undefined; maxlength?: number; rows?: number }) {
  return (
    <Around {...props}>
      <textarea id={props.id} name={props.name} maxlength={props.maxlength} rows={props.rows ?? 4} aria-describedby={describedBy(props)} aria-invalid={props.error ? 'true' : undefined}>
        {props.value ?? ''}
      </textarea>
    </Around>
  )
}

export function SelectField(props: FieldProps & { value?: string | undefined; options: ReadonlyArray<{ value: string; label: string }> }) {
  return (
    <Around {...props}>
      <select id={props.id} name={props.name} aria-describedby={describedBy(props)} aria-invalid={props.error ? 'true' : undefined}>
        {props.options.map((option) => (
          <option value={option.value} selected={option.value === (props.value ?? '')}>
            {option.label}
          </option>
        ))}
      </select>
    </Around>
  )
}

/** The top-level fields a schema refused (the console words its own message for each). */
export function refusedFields(error: z.ZodError): Set<string> {
  return new Set(error.issues.map((issue) => String(issue.path[0] ?? '')))
}
