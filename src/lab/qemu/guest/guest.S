/*
 * ferry's lab guest: a multiboot (version 1) kernel that QEMU loads with `-kernel`. It gives a
 * live migration real work to do, and shows whether the VM kept running:
 *
 *   1. It writes a non-zero pattern over all of its memory above 1 MiB, so that no page is a
 *      zero page that QEMU could send as a flag instead of 4 KiB of data.
 *   2. On every tick of a 1 kHz timer it rewrites a working set of `ws=N` MiB (from the kernel
 *      command line, default 4), one dword per 4 KiB page, which dirties the whole set. A pass
 *      that takes longer than a tick is followed by the next one at once.
 *   3. Every 50 timer ticks (50 ms) it prints `ferry-guest tick N` on COM1, N counting from 1.
 *
 * Between passes the CPU halts until the next timer interrupt, so an idle guest costs the host
 * little CPU under QEMU's software emulation.
 *
 * Assemble with `as --32` and link with `ld -m elf_i386 -T guest.ld`. The CPU arrives in 32-bit
 * protected mode with paging and interrupts off, EAX = 0x2BADB002 and EBX = the multiboot
 * information structure. The loader's GDT may be anywhere, so the guest loads its own.
 */

        .set MULTIBOOT_MAGIC, 0x1BADB002
        /* Bit 1: the loader must fill in mem_lower and mem_upper. */
        .set MULTIBOOT_FLAGS, 0x00000002
        .set COM1, 0x3F8
        .set FILL_PATTERN, 0xA5C3E10F
        .set DEFAULT_WORKING_SET_MIB, 4
        /* 1193182 Hz / 1193 = 1000.2 Hz. */
        .set PIT_DIVISOR, 1193
        .set TICKS_PER_PRINT, 50
        .set CODE_SELECTOR, 0x08
        .set DATA_SELECTOR, 0x10
        .set TIMER_VECTOR, 0x20

        .section .multiboot, "a"
        .align 4
        .long MULTIBOOT_MAGIC
        .long MULTIBOOT_FLAGS
        .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

        .section .rodata
        .align 8
gdt:
        .quad 0
        .quad 0x00CF9A000000FFFF        /* code: base 0, limit 4 GiB, 32-bit, execute/read */
        .quad 0x00CF92000000FFFF        /* data: base 0, limit 4 GiB, read/write */
gdt_end:
gdt_descriptor:
        .word gdt_end - gdt - 1
        .long gdt
idt_descriptor:
        .word 256 * 8 - 1
        .long idt
boot_message:   .asciz "ferry-guest: memory written up to MiB "
set_message:    .asciz "ferry-guest: working set MiB "
tick_message:   .asciz "ferry-guest tick "
fault_message:  .asciz "ferry-guest: CPU exception, halted\n"

        .section .bss
        .align 16
stack_bottom:
        .skip 16384
stack_top:
idt:            .skip 256 * 8
memory_end:     .long 0         /* first byte past usable RAM */
working_set:    .long 0         /* working set size in bytes */
pass:           .long 0         /* pass number, stored into every page of the working set */
jiffies:        .long 0         /* timer interrupts so far */
last_print:     .long 0         /* jiffies at the last tick line */
tick:           .long 0
digits:         .skip 12

        .section .text
        .globl _start
_start:
        cli
        mov $stack_top, %esp

        /* mem_upper (offset 8) is the KiB of RAM above 1 MiB. */
        mov 8(%ebx), %eax
        shl $10, %eax
        add $0x100000, %eax
        mov %eax, memory_end

        /* Bit 2 of the flags (offset 0) says that offset 16 holds the command line. */
        mov $DEFAULT_WORKING_SET_MIB, %eax
        testl $4, (%ebx)
        jz 1f
        mov 16(%ebx), %esi
        call parse_working_set
1:
        shl $20, %eax
        /* Keep the working set inside RAM, however large `ws=` is. */
        mov memory_end, %ecx
        sub $workspace_start, %ecx
        cmp %ecx, %eax
        jbe 2f
        mov %ecx, %eax
2:
        mov %eax, working_set

        /* Step 1: RAM from the first page after the kernel to memory_end. The multiboot
         * structures live there too, so they are read above, not after. */
        mov $workspace_start, %edi
        mov memory_end, %ecx
        sub %edi, %ecx
        shr $2, %ecx
        mov $FILL_PATTERN, %eax
        cld
        rep stosl

        mov $boot_message, %esi
        call print_string
        mov memory_end, %eax
        shr $20, %eax
        call print_decimal
        mov $set_message, %esi
        call print_string
        mov working_set, %eax
        shr $20, %eax
        call print_decimal

        call setup_descriptors
        call setup_timer
        sti

        /* Steps 2 and 3. */
rewrite_pass:
        incl pass
        mov pass, %edx
        mov $workspace_start, %edi
        mov %edi, %ecx
        add working_set, %ecx
3:
        cmp %ecx, %edi
        jae 4f
        mov %edx, (%edi)
        add $4096, %edi
        jmp 3b
4:
        mov jiffies, %eax
        sub last_print, %eax
        cmp $TICKS_PER_PRINT, %eax
        jb 5f
        addl %eax, last_print
        incl tick
        mov $tick_message, %esi
        call print_string
        mov tick, %eax
        call print_decimal
5:
        /* A pass that took a tick or more has a timer interrupt pending: hlt returns at once. */
        hlt
        jmp rewrite_pass

/* Loads the guest's GDT and segment registers, and an IDT whose gates all point at handlers. */
setup_descriptors:
        lgdt gdt_descriptor
        ljmp $CODE_SELECTOR, $6f
6:
        mov $DATA_SELECTOR, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %fs
        mov %ax, %gs
        mov %ax, %ss

        mov $idt, %edi
        xor %ecx, %ecx
7:
        mov $cpu_exception, %eax
        cmp $32, %ecx
        jb 8f
        mov $spurious_interrupt, %eax
        cmp $TIMER_VECTOR, %ecx
        jne 8f
        mov $timer_interrupt, %eax
8:
        /* A 32-bit interrupt gate: offset 0-15, selector, 0, type 0x8E, offset 16-31. */
        mov %ax, (%edi)
        movw $CODE_SELECTOR, 2(%edi)
        movb $0, 4(%edi)
        movb $0x8E, 5(%edi)
        shr $16, %eax
        mov %ax, 6(%edi)
        add $8, %edi
        inc %ecx
        cmp $256, %ecx
        jb 7b
        lidt idt_descriptor
        ret

/* Moves the PIC's IRQs to vectors 0x20-0x2F, leaves only IRQ 0 unmasked, and starts the PIT. */
setup_timer:
        mov $0x11, %al                  /* ICW1: initialise, ICW4 follows */
        out %al, $0x20
        out %al, $0xA0
        mov $TIMER_VECTOR, %al          /* ICW2: vector bases */
        out %al, $0x21
        mov $TIMER_VECTOR + 8, %al
        out %al, $0xA1
        mov $0x04, %al                  /* ICW3: slave on IRQ 2 */
        out %al, $0x21
        mov $0x02, %al
        out %al, $0xA1
        mov $0x01, %al                  /* ICW4: 8086 mode */
        out %al, $0x21
        out %al, $0xA1
        mov $0xFE, %al                  /* masks: IRQ 0 only */
        out %al, $0x21
        mov $0xFF, %al
        out %al, $0xA1

        mov $0x34, %al                  /* PIT channel 0, low then high byte, rate generator */
        out %al, $0x43
        mov $(PIT_DIVISOR & 0xFF), %al
        out %al, $0x40
        mov $(PIT_DIVISOR >> 8), %al
        out %al, $0x40
        ret

timer_interrupt:
        push %eax
        incl jiffies
        mov $0x20, %al                  /* end of interrupt */
        out %al, $0x20
        pop %eax
        iret

/* A masked IRQ line can still raise a spurious IRQ 7; it needs no end of interrupt. */
spurious_interrupt:
        iret

cpu_exception:
        cli
        mov $fault_message, %esi
        call print_string
9:
        hlt
        jmp 9b

/* Reads the number after the first "ws=" in the string at ESI into EAX, or returns EAX unchanged. */
parse_working_set:
        push %eax
10:
        cmpb $0, (%esi)
        je 13f
        cmpb $'w', (%esi)
        jne 12f
        cmpb $'s', 1(%esi)
        jne 12f
        cmpb $'=', 2(%esi)
        jne 12f
        add $3, %esi
        xor %eax, %eax
11:
        movzbl (%esi), %ecx
        sub $'0', %ecx
        cmp $9, %ecx
        ja 14f
        imul $10, %eax
        add %ecx, %eax
        inc %esi
        jmp 11b
14:
        add $4, %esp                    /* drop the saved default */
        ret
12:
        inc %esi
        jmp 10b
13:
        pop %eax
        ret

/* Writes the NUL-terminated string at ESI to COM1. */
print_string:
        lodsb
        test %al, %al
        jz 15f
        call put_char
        jmp print_string
15:
        ret

/* Writes EAX as a decimal number and a newline to COM1. */
print_decimal:
        mov $digits + 11, %edi
        movb $0, (%edi)
        mov $10, %ecx
16:
        xor %edx, %edx
        div %ecx
        add $'0', %dl
        dec %edi
        mov %dl, (%edi)
        test %eax, %eax
        jnz 16b
        mov %edi, %esi
        call print_string
        mov $'\n', %al
        call put_char
        ret

/* Writes AL to COM1 once its transmit holding register is empty (line status bit 5). */
put_char:
        mov %al, %ah
        mov $COM1 + 5, %dx
17:
        inb %dx, %al
        test $0x20, %al
        jz 17b
        mov $COM1, %dx
        mov %ah, %al
        outb %al, %dx
        ret
